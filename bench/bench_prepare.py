"""`deepsense prepare` on HHAR-size raw files: time, peak memory, and injected faults found.

    .venv/bin/python bench/bench_prepare.py [--rows 33000000] [--faults 50] [--work DIR]

Generates synthetic recordings in the raw UCI HHAR format (four CSV files, about 33 million
rows and 1.3 GB like the real data set), corrupts `--faults` rows, then runs
`deepsense prepare --source hhar` in a child process and reports its wall time, peak RSS and
whether every injected fault was reported. Goal (issue 2): < 10 minutes and < 4 GB on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, peak_rss_mib, write_section  # noqa: E402

from deepsense.data.hhar import inject_hhar_faults, write_hhar  # noqa: E402
from deepsense.data.synthetic import DEVICE_MODELS, SyntheticSpec, device_model, make_recordings  # noqa: E402

DEVICES = ("nexus4_1", "s3_1", "s3mini_1", "samsungold_1", "gear_1", "lgwatch_1")


def _spec_for_rows(n_rows: int) -> SyntheticSpec:
    """A 9-user spec whose acc + gyro sample count is about `n_rows`."""
    rate = sum(DEVICE_MODELS[device_model(d)].acc_rate_hz + DEVICE_MODELS[device_model(d)].gyro_rate_hz
               for d in DEVICES)
    seconds = n_rows / (rate * 9 * 6)
    return SyntheticSpec(n_users=9, devices=DEVICES, seconds_per_activity=round(seconds, 1),
                         n_gaps=2, max_gap_s=1.5, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=33_000_000)
    parser.add_argument("--faults", type=int, default=50)
    parser.add_argument("--work", type=Path, help="scratch directory (default: a temp dir)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    clean, faulty, out = work / "clean", work / "faulty", work / "prepared"

    started = time.perf_counter()
    spec = _spec_for_rows(args.rows)
    recordings = make_recordings(spec)
    n_rows = sum(len(s) for r in recordings for s in r.streams.values())
    generate_s = time.perf_counter() - started
    started = time.perf_counter()
    write_hhar(recordings, clean)
    del recordings
    write_s = time.perf_counter() - started
    faults = inject_hhar_faults(clean, faulty, n_faults=args.faults, rng=np.random.default_rng(0))
    shutil.rmtree(clean)
    size_gb = sum(f.stat().st_size for f in faulty.iterdir()) / 1e9

    started = time.perf_counter()
    deepsense = Path(sys.executable).with_name("deepsense")
    proc = subprocess.run([str(deepsense), "prepare", "--source", "hhar", "--input", str(faulty),
                           "--out", str(out)], capture_output=True, text=True)
    prepare_s = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"prepare failed ({proc.returncode}): {proc.stderr[-2000:]}")
    peak_mib = peak_rss_mib(children=True)
    meta = json.loads((out / "dataset.json").read_text())
    skipped = Counter(meta["info"]["reports"][0]["skipped"])
    injected = Counter(f.reason for f in faults)
    found = all(skipped[reason] >= count for reason, count in injected.items())

    rows = [[f"{n_rows:,}", f"{size_gb:.2f} GB", f"{generate_s + write_s:.0f} s",
             f"{prepare_s:.0f} s", f"{n_rows / prepare_s / 1e6:.2f} M rows/s",
             f"{peak_mib / 1024:.2f} GiB", f"{meta['n_windows']:,}",
             "yes" if prepare_s < 600 and peak_mib < 4096 else "**no**"]]
    fault_rows = [[reason, injected[reason], skipped.get(reason, 0)] for reason in sorted(injected)]
    body = (markdown_table(["raw rows", "CSV size", "generate + write", "prepare (wall)",
                            "throughput", "prepare peak RSS", "windows", "goal met"], rows)
            + "\n\nInjected faults and what `prepare` reported (report counts may be higher: "
            "HHAR-style duplicate timestamps also occur naturally):\n\n"
            + markdown_table(["reason", "injected", "reported"], fault_rows)
            + f"\n\nAll injected faults reported: {'yes' if found else '**no**'}. "
            f"Synthetic spec: 9 users x {len(DEVICES)} devices ({', '.join(DEVICES)}) x 6 "
            f"activities x {spec.seconds_per_activity} s. Our writer prints full-precision floats, so "
            "the files are about 3x the real data set's 1.3 GB for the same rows. "
            "Goal: < 10 min and < 4 GB peak RSS.")
    write_section("Prepare HHAR-size raw data (issue 2)",
                  "python bench/bench_prepare.py " + " ".join(sys.argv[1:]), body)
    if args.work is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
