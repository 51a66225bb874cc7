"""Edge benchmark: single-window latency, bundle sizes and peak memory of the edge runtime.

    PYTHONPATH=. .venv/bin/python bench/bench_edge.py --out /tmp/bench-edge

Makes an HHAR-size DeepSense (the default ModelConfig) trained briefly on synthetic data
and a DeepIoT-thinned copy of it (`deepsense compress` to 7% of the parameters, a short
run: latency and size depend on the widths, not on how well the weights were trained), or
takes yours with --original RUN --thinned RUN. Exports float32, dynamic-range and int8
bundles, then measures in worker processes pinned to one core (the Edison-class
stand-in): Keras, the NumPy runtime and LiteRT, median ms per window at batch 1; the edge
runtimes again with the address space limited to 1 GiB; and the peak RSS of a process that
loads a bundle and predicts 1,000 windows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import (markdown_table, median_latency_ms, peak_rss_mib,  # noqa: E402
                    single_thread_tensorflow, write_section)

ONE_GIB = 1 << 30
SINGLE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                  "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")}


# ---------------------------------------------------------------- workers (one process each)
def _worker(spec: dict) -> dict:
    """Runs inside a child pinned to core 0: latency of each model, then peak RSS."""
    os.sched_setaffinity(0, {0})
    x = np.load(spec["windows"])
    if spec["kind"] == "keras":
        tf = single_thread_tensorflow()
        from deepsense.run import load_run

        models = {name: load_run(path)[0] for name, path in spec["models"].items()}
        signature = [tf.TensorSpec((1, *x.shape[1:]), tf.float32)]
        call = {name: tf.function(lambda w, m=m: m(w, training=False),
                                  input_signature=signature)
                for name, m in models.items()}
    else:
        from edge.runtime import load_bundle

        models = {name: load_bundle(path, backend=spec["backend"])
                  for name, path in spec["models"].items()}
        call = {name: m.predict for name, m in models.items()}
    ms = median_latency_ms(call, x, spec["rounds"])
    if spec["kind"] != "keras":  # the edge process of the memory goal: 1,000 windows
        for name, function in call.items():
            for i in range(1000):
                function(x[i % len(x)][None])
    return {"ms": ms, "peak_rss_mib": peak_rss_mib()}


def run_worker(spec: dict, work: Path, address_space: int | None = None) -> dict:
    """Run `_worker` in a fresh process; {"error": ...} if it fails (e.g. out of memory)."""
    path = work / f"worker-{spec['kind']}-{spec.get('backend', '')}-{address_space}.json"
    path.write_text(json.dumps(spec))

    def limit():
        if address_space:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    done = subprocess.run([sys.executable, __file__, "--worker", str(path)], capture_output=True,
                          text=True, env={**os.environ, **SINGLE_THREAD,
                                          "TF_CPP_MIN_LOG_LEVEL": "3"}, preexec_fn=limit)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["exit code %d" % done.returncode])[-1]
        return {"error": last[:160]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- models and bundles
def make_runs(work: Path, seconds: float) -> tuple[Path, Path, Path]:
    """A prepared synthetic dataset, an HHAR-size run and its DeepIoT-thinned run."""
    from deepsense.cli import main

    data, original, thinned = work / "data", work / "original", work / "thinned"
    if not data.exists():
        assert main(["prepare", "--source", "synthetic", "--users", "4", "--seconds",
                     str(seconds), "--devices", "nexus4_1", "--out", str(data)]) == 0
    if not original.exists():
        assert main(["train", "--data", str(data), "--out", str(original), "--epochs", "3",
                     "--split", "loso:a", "--set", "train.learning_rate=1e-3"]) == 0
    if not thinned.exists():
        assert main(["compress", "--model", str(original), "--out", str(thinned),
                     "--target-params", "0.07", "--step-interval", "5",
                     "--fine-tune-epochs", "2"]) == 0
    return data, original, thinned


def make_bundles(original: Path, thinned: Path, work: Path) -> dict[str, Path]:
    from deepsense.export import export_bundle

    bundles = {}
    for name, run in (("original", original), ("thinned", thinned)):
        for quantize in ("none", "dynamic", "int8"):
            bundles[f"{name} {quantize}"] = export_bundle(
                run, work / "bundles" / f"{name}-{quantize}", quantize=quantize)
    return bundles


# ---------------------------------------------------------------- report
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-edge"))
    parser.add_argument("--original", type=Path, help="run directory of the full model")
    parser.add_argument("--thinned", type=Path, help="run directory of its thinned model")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="synthetic seconds per user x activity for the built-in models")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--windows", type=int, default=20, help="windows per round")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker.read_text()))))
        return

    work = args.out
    work.mkdir(parents=True, exist_ok=True)
    if args.original and args.thinned:
        original, thinned = args.original, args.thinned
        data = Path(json.loads((original / "run.json").read_text())["data_path"])
    else:
        data, original, thinned = make_runs(work, args.seconds)
    bundles = make_bundles(original, thinned, work)
    manifests = {k: json.loads((b / "manifest.json").read_text()) for k, b in bundles.items()}

    from deepsense.data.prepared import load_prepared

    x = load_prepared(data).x[:args.windows]
    np.save(work / "windows.npy", x)
    base = {"windows": str(work / "windows.npy"), "rounds": args.rounds}
    floats = {k: str(v) for k, v in bundles.items() if k.endswith("none")}
    results = {
        "keras": run_worker({**base, "kind": "keras",
                             "models": {"original none": str(original),
                                        "thinned none": str(thinned)}}, work),
        "numpy": run_worker({**base, "kind": "edge", "backend": "numpy", "models": floats}, work),
        "litert": run_worker({**base, "kind": "edge", "backend": "litert",
                              "models": {k: str(v) for k, v in bundles.items()}}, work),
    }
    limited = {
        "keras": run_worker({**base, "kind": "keras",
                             "models": {"thinned none": str(thinned)}}, work, ONE_GIB),
        "numpy": run_worker({**base, "kind": "edge", "backend": "numpy",
                             "models": {"thinned none": floats["thinned none"]}}, work, ONE_GIB),
        "litert": run_worker({**base, "kind": "edge", "backend": "litert",
                              "models": {"thinned none": floats["thinned none"]}}, work, ONE_GIB),
    }
    print(json.dumps({"results": results, "limited": limited}, indent=1))

    def ms(runtime: str, model: str, table: dict = results) -> float | None:
        return table[runtime].get("ms", {}).get(model)

    rows = []
    for model in bundles:
        accuracy = manifests[model].get("checks", {}).get("litert", {}).get("accuracy")
        for runtime in ("keras", "numpy", "litert"):
            value = ms(runtime, model)
            if value is None:
                continue
            reference = ms("keras", "original none")
            rows.append([model, runtime, f"{value:.3f}",
                         f"{value / reference:.3f}" if reference else "-",
                         f"{accuracy:.3f}" if accuracy is not None and runtime == "litert"
                         else ""])
    latency = markdown_table(["model, tflite", "runtime", "ms/window (median)",
                              "ratio to Keras original", "LiteRT test accuracy"], rows)
    size_rows = [[k, manifests[k]["parameters"]["exported"],
                  f"{manifests[k]['files']['weights.npz']['bytes'] / 1024:.1f}",
                  f"{manifests[k]['files']['model.tflite']['bytes'] / 1024:.1f}",
                  f"{manifests[k]['size_bytes'] / 1024:.1f}",
                  f"{bundles[k].with_suffix('.zip').stat().st_size / 1024:.1f}",
                  manifests[k].get("checks", {}).get("quantization_accuracy_change", "")]
                 for k in bundles]
    sizes = markdown_table(["bundle", "parameters", "weights.npz KiB", "model.tflite KiB",
                            "bundle KiB", ".zip KiB", "accuracy change (quantized)"], size_rows)
    memory_rows = []
    for label, table in (("unlimited", results), ("1 GiB address space", limited)):
        for runtime in ("keras", "numpy", "litert"):
            r = table[runtime]
            memory_rows.append([label, runtime, r.get("error") or f"{r['peak_rss_mib']:.0f}",
                                "" if "error" in r else
                                f"{ms(runtime, 'thinned none', table):.3f}"])
    memory = markdown_table(["limit", "process", "peak RSS MiB (load + latency runs; edge: "
                             "+ 1,000 windows)",
                             "thinned ms/window"], memory_rows)

    thin_numpy, thin_litert = ms("numpy", "thinned none"), ms("litert", "thinned none")
    thinned_kib = manifests["thinned none"]["size_bytes"] / 1024
    numpy_rss = limited["numpy"].get("peak_rss_mib") or results["numpy"]["peak_rss_mib"]
    goals = markdown_table(["goal", "measured", "met"], [
        ["NumPy runtime within 2x of LiteRT (thinned, float32)",
         f"{thin_numpy / thin_litert:.2f}x", thin_numpy <= 2 * thin_litert],
        ["edge process with the thinned bundle < 100 MB peak RSS (NumPy runtime)",
         f"{numpy_rss:.0f} MiB", numpy_rss * 1.048576 < 100],
        ["thinned float32 bundle < 150 KB", f"{thinned_kib:.1f} KiB "
         f"({manifests['thinned none']['size_bytes']:,} bytes)",
         manifests["thinned none"]["size_bytes"] < 150_000],
    ])
    kept = manifests["thinned none"]["metrics"].get("compression", {})
    body = (f"Original: {original} ({manifests['original none']['parameters']['exported']:,} "
            f"exported parameters); thinned: {thinned} "
            f"({manifests['thinned none']['parameters']['exported']:,}; compression "
            f"{json.dumps({k: v for k, v in kept.items() if not isinstance(v, dict)})}).\n"
            f"Batch 1, {args.windows} windows x {args.rounds} rounds per model, one pinned core, "
            "BLAS and TensorFlow pools at 1 thread; Keras is `model(x, training=False)` inside "
            "a `tf.function` with a fixed input signature. Ratios are within this one run.\n\n"
            f"### Latency\n\n{latency}\n\n### Bundle sizes\n\n{sizes}\n\n"
            f"### Memory\n\n{memory}\n\n### Goals\n\n{goals}\n")
    write_section("Edge runtime", "PYTHONPATH=. .venv/bin/python bench/bench_edge.py "
                  f"--out {args.out}" + (f" --original {args.original} --thinned "
                                         f"{args.thinned}" if args.original else ""), body)


if __name__ == "__main__":
    main()
