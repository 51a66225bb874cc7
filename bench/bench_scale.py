"""Scale benchmark: sharded prepare and streaming training with bounded memory; 1 vs 2 workers.

    PYTHONPATH=. .venv/bin/python bench/bench_scale.py --out /tmp/bench-scale

1. Prepare a sharded synthetic dataset the size of the full HHAR augmented x10 as the
   released code does (about 120,000 windows per split) times `--scale` (10: about 1.2
   million windows, 11 GB of float32 features), recordings generated one at a time, and
   record wall time and peak RSS of that process.
2. Train the HHAR-size DeepSense streaming from those shards for `--steps` batches and
   record peak RSS: memory must not grow with the dataset.
3. Training throughput of the same model on a small in-memory dataset with 1 process and
   with 2 local worker processes (MultiWorkerMirroredStrategy over localhost).
Each step runs in its own process; peak RSS is that process's own maximum.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import markdown_table, peak_rss_mib, write_section  # noqa: E402
from gateway.broker import free_port  # noqa: E402

#: Windows per split of the full HHAR with the released code's x10 augmentation.
HHAR_AUGMENTED_WINDOWS = 120_000


def step_prepare(out: Path, windows: int, shard_windows: int) -> dict:
    """Stream synthetic recordings (+9 augmented copies) into shards until ~`windows`."""
    from deepsense.data.features import FeatureConfig
    from deepsense.data.prepared import prepare_to_shards
    from deepsense.data.synthetic import ACTIVITIES, SyntheticSpec, make_recording

    seconds = 60.0
    per_recording = 10 * int(seconds / FeatureConfig().window_s)  # original + 9 copies
    n_recordings = -(-windows // per_recording)
    devices = ("nexus4_1", "s3_1", "gear_1")
    spec = SyntheticSpec(seconds_per_activity=seconds, seed=0)

    def recordings():
        for i in range(n_recordings):
            yield make_recording(spec, f"u{i // (len(devices) * len(ACTIVITIES))}",
                                 devices[(i // len(ACTIVITIES)) % len(devices)],
                                 ACTIVITIES[i % len(ACTIVITIES)])

    started = time.perf_counter()
    prepare_to_shards(recordings(), FeatureConfig(), out, shard_windows=shard_windows,
                      augment_copies=9, activity_names=list(ACTIVITIES))
    meta = json.loads((out / "dataset.json").read_text())
    size = sum(p.stat().st_size for p in out.iterdir())
    return {"seconds": time.perf_counter() - started, "windows": meta["n_windows"],
            "shards": len(meta["shards"]), "bytes": size, "peak_rss_mib": peak_rss_mib()}


def step_train(data: Path, out: Path, steps: int, extra: list[str]) -> dict:
    from deepsense.cli import main

    started = time.perf_counter()
    code = main(["train", "--data", str(data), "--out", str(out), "--epochs", "1",
                 "--split", "random:0.01", "--set", "train.validation_fraction=0.002",
                 "--set", f"train.steps_per_epoch={steps}", *extra])
    info = json.loads((out / "run.json").read_text()) if code == 0 else {}
    return {"code": code, "seconds": time.perf_counter() - started,
            "windows_per_s": info.get("train_windows_per_s"), "peak_rss_mib": peak_rss_mib()}


def run_step(args: list[str]) -> dict:
    done = subprocess.run([sys.executable, __file__, "--step", *args], capture_output=True,
                          text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def throughput(data: Path, work: Path, steps: int) -> dict:
    """Windows/s of 1 process and of 2 local workers, same global batch and steps."""
    single = run_step(["train", str(data), str(work / "one"), str(steps)])
    workers = f"localhost:{free_port()},localhost:{free_port()}"
    procs = [subprocess.Popen([sys.executable, __file__, "--step", "train", str(data),
                               str(work / "two"), str(steps), "--workers", workers,
                               "--worker-index", str(i)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
             for i in range(2)]
    results = [p.communicate() for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError(results[0][1][-2000:] + results[1][1][-2000:])
    two = json.loads(results[0][0].strip().splitlines()[-1])
    return {"1 process": single, "2 workers": two}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-scale"))
    parser.add_argument("--scale", type=float, default=10.0,
                        help="dataset size in units of the augmented HHAR (120,000 windows)")
    parser.add_argument("--shard-windows", type=int, default=8192)
    parser.add_argument("--steps", type=int, default=200, help="batches of streaming training")
    parser.add_argument("--throughput-steps", type=int, default=40)
    parser.add_argument("--step", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        kind, *rest = args.step
        if kind == "prepare":
            result = step_prepare(Path(rest[0]), int(rest[1]), int(rest[2]))
        else:
            result = step_train(Path(rest[0]), Path(rest[1]), int(rest[2]), rest[3:])
        print(json.dumps(result))
        return

    work = args.out
    work.mkdir(parents=True, exist_ok=True)
    windows = int(args.scale * HHAR_AUGMENTED_WINDOWS)
    big, small = work / "sharded", work / "small"
    prepared = run_step(["prepare", str(big), str(windows), str(args.shard_windows)])
    small_prepared = run_step(["prepare", str(small), str(HHAR_AUGMENTED_WINDOWS // 20),
                               str(args.shard_windows)])
    streamed = run_step(["train", str(big), str(work / "run-big"), str(args.steps)])
    streamed_small = run_step(["train", str(small), str(work / "run-small"), str(args.steps)])
    rates = throughput(small, work, args.throughput_steps)
    print(json.dumps({"prepare": prepared, "train": streamed, "rates": rates}, indent=1))

    memory = markdown_table(
        ["step", "windows", "shards", "on disk GB", "wall s", "peak RSS MiB"],
        [["prepare (streamed to shards)", f"{prepared['windows']:,}", prepared["shards"],
          f"{prepared['bytes'] / 1e9:.1f}", f"{prepared['seconds']:.0f}",
          f"{prepared['peak_rss_mib']:.0f}"],
         ["prepare, small reference", f"{small_prepared['windows']:,}", small_prepared["shards"],
          f"{small_prepared['bytes'] / 1e9:.2f}", f"{small_prepared['seconds']:.0f}",
          f"{small_prepared['peak_rss_mib']:.0f}"],
         [f"train {args.steps} batches streaming from the shards", f"{prepared['windows']:,}",
          prepared["shards"], "", f"{streamed['seconds']:.0f}",
          f"{streamed['peak_rss_mib']:.0f}"],
         [f"train {args.steps} batches, small reference", f"{small_prepared['windows']:,}",
          small_prepared["shards"], "", f"{streamed_small['seconds']:.0f}",
          f"{streamed_small['peak_rss_mib']:.0f}"]])
    one, two = rates["1 process"], rates["2 workers"]
    speed = markdown_table(
        ["training", "windows/s", "ratio"],
        [["1 process (TensorFlow uses both cores)", one["windows_per_s"], "1.00"],
         ["2 local workers (MultiWorkerMirroredStrategy)", two["windows_per_s"],
          f"{two['windows_per_s'] / one['windows_per_s']:.2f}"]])
    body = (f"HHAR-size DeepSense (516,726 parameters), batch 64. Dataset: synthetic, 10 windows "
            f"per original (9 augmented copies, as the released code), {args.scale:g} x the "
            f"augmented HHAR ({HHAR_AUGMENTED_WINDOWS:,} windows).\n\n### Memory\n\n{memory}\n\n"
            f"### Throughput, {args.throughput_steps} batches\n\n{speed}\n")
    write_section("Scale: shards and workers",
                  f"PYTHONPATH=. .venv/bin/python bench/bench_scale.py --out {args.out} "
                  f"--scale {args.scale:g} --steps {args.steps}", body)


if __name__ == "__main__":
    main()
