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
#: Windows per batched call (the gateway's batch size under load).
BATCH = 64
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
    times: dict[str, list[float]] = {name: [] for name in call}
    batched: dict[str, list[float]] = {name: [] for name in call}
    batch = np.load(spec["batch"]) if spec["kind"] != "keras" else None
    for name in call:  # warm up
        for window in x[:5]:
            call[name](window[None])
    for _ in range(spec["rounds"]):  # rounds alternate between models: same noise for all
        for name, function in call.items():
            for window in x:
                started = time.perf_counter()
                function(window[None])
                times[name].append(1000 * (time.perf_counter() - started))
            if batch is not None:  # (64, T, F) at once; LiteRT invokes once per window
                started = time.perf_counter()
                function(batch)
                batched[name].append(1000 * (time.perf_counter() - started) / len(batch))
    if spec["kind"] != "keras":  # the edge process of the memory goal: 1,000 windows
        for name, function in call.items():
            for i in range(1000):
                function(x[i % len(x)][None])
    return {"ms": {name: statistics.median(v) for name, v in times.items()},
            "batched_ms": {name: statistics.median(v) for name, v in batched.items() if v},
            "peak_rss_mib": peak_rss_mib()}


def _peak_worker() -> dict:
    """Single-core float32 matmul throughput (a 1024^3 sgemm through NumPy's BLAS), GFLOP/s."""
    os.sched_setaffinity(0, {0})
    a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
    a @ a
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - started)
    return {"gflops": 2 * 1024**3 / best / 1e9}


def model_flops(bundle: Path) -> float:
    """Useful float32 FLOPs of one window in the NumPy runtime: 2 per multiply-add of every
    conv tap that reads data (the non-zeros of its compiled matrix), every GRU product and
    the head; activations not counted."""
    from edge.runtime import load_bundle

    model = load_bundle(bundle)
    graph, steps = model._run, model.features.n_intervals
    conv = sum(2 * np.count_nonzero(matrix) for layer in graph.layers
               for _, _, matrix in layer.blocks)
    # The recurrent kernel's last row is the folded bias (a constant-1 input): not counted.
    gru = sum(2 * (kernel.size + recurrent[:-1].size) for kernel, _, recurrent in graph.grus)
    return float(steps * (conv + gru) + 2 * graph.head[0].size)


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited from the parent
    that forked it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


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
def given_or_new_runs(work: Path, original: Path | None, thinned: Path | None,
                      seconds: float) -> tuple[Path, Path, Path]:
    """(data, original run, thinned run): the runs given (their data from run.json), or new
    ones made in `work` by `make_runs`."""
    if original and thinned:
        return Path(json.loads((original / "run.json").read_text())["data_path"]), original, thinned
    return make_runs(work, seconds)


def make_runs(work: Path, seconds: float) -> tuple[Path, Path, Path]:
    """A prepared synthetic dataset, an HHAR-size run and its DeepIoT-thinned run."""
    from deepsense.cli import main

    data, original, thinned = work / "data", work / "original", work / "thinned"
    if not data.exists():
        assert main(["prepare", "--source", "synthetic", "--users", "4", "--seconds",
                     str(seconds), "--devices", "nexus4_1", "--out", str(data)]) == 0
    if not original.exists():
        assert main(["train", "--data", str(data), "--out", str(original), "--epochs", "3",
                     "--split", "loso:a"]) == 0
    if not thinned.exists():
        assert main(["compress", "--model", str(original), "--out", str(thinned),
                     "--target-params", "0.07", "--step-interval", "5",
                     "--fine-tune-epochs", "2"]) == 0
    return data, original, thinned


def make_numpy_bundles(original: Path, thinned: Path, work: Path) -> dict[str, Path]:
    """NumPy-only bundles (the default export) with float32, float16 and int8 weights."""
    from deepsense.export import export_bundle

    return {f"{name} {dtype}": export_bundle(run, work / "numpy-bundles" / f"{name}-{dtype}",
                                             weights=dtype)
            for name, run in (("original", original), ("thinned", thinned))
            for dtype in ("float32", "float16", "int8")}


def accuracy_all_windows(bundle: Path, data: Path) -> tuple[float, int]:
    """NumPy-runtime accuracy on every labelled window of the dataset (not only the run's test
    split: 30 test windows resolve 3.3 points, too coarse for a 0.5-point goal)."""
    from deepsense.data.prepared import load_prepared
    from edge.runtime import load_bundle

    model, ds = load_bundle(bundle), load_prepared(data)
    rows = np.flatnonzero(ds.labels(model.task) >= 0)
    outputs = np.concatenate([model.predict(ds.x[rows[i:i + 256]])
                              for i in range(0, len(rows), 256)])
    return float(np.mean(outputs.argmax(axis=1) == ds.labels(model.task)[rows])), len(rows)


def make_bundles(original: Path, thinned: Path, work: Path) -> dict[str, Path]:
    from deepsense.export import export_bundle

    bundles = {}
    for name, run in (("original", original), ("thinned", thinned)):
        for quantize in ("none", "dynamic", "int8"):
            bundles[f"{name} {quantize}"] = export_bundle(
                run, work / "bundles" / f"{name}-{quantize}", quantize=quantize,
                formats=("numpy", "tflite"))
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
        spec = json.loads(args.worker.read_text())
        print(json.dumps(_peak_worker() if spec["kind"] == "peak" else _worker(spec)))
        return

    work = args.out
    work.mkdir(parents=True, exist_ok=True)
    data, original, thinned = given_or_new_runs(work, args.original, args.thinned, args.seconds)
    bundles = make_bundles(original, thinned, work)
    manifests = {k: json.loads((b / "manifest.json").read_text()) for k, b in bundles.items()}
    numpy_bundles = make_numpy_bundles(original, thinned, work)
    numpy_manifests = {k: json.loads((b / "manifest.json").read_text())
                       for k, b in numpy_bundles.items()}

    from deepsense.data.prepared import load_prepared

    x = load_prepared(data).x[:args.windows]
    np.save(work / "windows.npy", x)
    np.save(work / "batch.npy", load_prepared(data).x[:BATCH])
    base = {"windows": str(work / "windows.npy"), "batch": str(work / "batch.npy"),
            "rounds": args.rounds}
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
    peak = run_worker({"kind": "peak"}, work)
    print(json.dumps({"results": results, "limited": limited, "peak": peak}, indent=1))

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

    arithmetic_rows, arithmetic_goals = [], []
    for model in ("original none", "thinned none"):
        numpy_b1, litert_b1 = ms("numpy", model), ms("litert", model)
        numpy_b64 = results["numpy"]["batched_ms"][model]
        litert_b64 = results["litert"]["batched_ms"][model]
        flops = model_flops(bundles[model])
        arithmetic_rows.append([
            model.split()[0], f"{flops / 1e6:.2f}", f"{numpy_b1:.3f}", f"{litert_b1:.3f}",
            f"{numpy_b1 / litert_b1:.2f}", f"{numpy_b64:.3f}", f"{litert_b64:.3f}",
            f"{numpy_b64 / litert_b64:.2f}", f"{flops / numpy_b1 / 1e6:.2f}",
            f"{flops / numpy_b64 / 1e6:.2f}",
            f"{100 * flops / numpy_b64 / 1e6 / peak['gflops']:.0f}%"])
        arithmetic_goals += [
            [f"{model.split()[0]}: NumPy batched (64) within 1.5x of LiteRT batched",
             f"{numpy_b64 / litert_b64:.2f}x", numpy_b64 <= 1.5 * litert_b64],
            [f"{model.split()[0]}: NumPy batch 1 within 2x of LiteRT batch 1",
             f"{numpy_b1 / litert_b1:.2f}x", numpy_b1 <= 2 * litert_b1]]
    thin_b1, full_b1 = ms("numpy", "thinned none"), ms("numpy", "original none")
    arithmetic_goals.append(["thinned NumPy batch 1 <= 30% of the original's",
                             f"{100 * thin_b1 / full_b1:.0f}%", thin_b1 <= 0.3 * full_b1])
    arithmetic = markdown_table(
        ["model", "MFLOP/window", "NumPy b1 ms", "LiteRT b1 ms", "ratio", "NumPy b64 ms/window",
         "LiteRT b64 ms/window", "ratio", "NumPy GFLOP/s b1", "NumPy GFLOP/s b64",
         "of measured peak"], arithmetic_rows)
    arithmetic_goals = markdown_table(["goal", "measured", "met"], arithmetic_goals)

    everywhere = {k: accuracy_all_windows(b, data) for k, b in numpy_bundles.items()}
    small_rows = []
    for key, m in numpy_manifests.items():
        reference = everywhere[f"{key.split()[0]} float32"][0]
        checks = m.get("checks", {})
        small_rows.append([key, f"{m['files']['weights.npz']['bytes']:,}", f"{m['size_bytes']:,}",
                           f"{m['size_bytes'] + (numpy_bundles[key] / 'manifest.json').stat().st_size:,}",
                           f"{numpy_bundles[key].with_suffix('.zip').stat().st_size:,}",
                           checks.get("numpy", {}).get("accuracy", ""),
                           checks.get("weights_accuracy_change", ""),
                           checks.get("numpy", {}).get("argmax_agreement", ""),
                           checks.get("windows", ""), f"{everywhere[key][0]:.4f}",
                           f"{100 * (everywhere[key][0] - reference):+.2f}"])
    small = markdown_table(["NumPy-only bundle (weights)", "weights.npz bytes",
                            "size_bytes (files)", "+ manifest.json bytes", ".zip bytes",
                            "test accuracy", "accuracy change vs Keras", "argmax agreement",
                            "test windows", f"accuracy, all {everywhere['thinned int8'][1]} "
                            "windows", "change vs float32 (points)"], small_rows)
    thin32, thin8 = numpy_manifests["thinned float32"], numpy_manifests["thinned int8"]
    change8 = thin8.get("checks", {}).get("weights_accuracy_change")

    thin_numpy, thin_litert = ms("numpy", "thinned none"), ms("litert", "thinned none")
    numpy_rss = limited["numpy"].get("peak_rss_mib") or results["numpy"]["peak_rss_mib"]
    goals = markdown_table(["goal", "measured", "met"], [
        ["NumPy runtime within 2x of LiteRT (thinned, float32)",
         f"{thin_numpy / thin_litert:.2f}x", thin_numpy <= 2 * thin_litert],
        ["edge process with the thinned bundle < 100 MB peak RSS (NumPy runtime)",
         f"{numpy_rss:.0f} MiB", numpy_rss * 1.048576 < 100],
        ["thinned float32 NumPy bundle < 150 KB (files; .zip)",
         f"{thin32['size_bytes']:,} B; {numpy_bundles['thinned float32'].with_suffix('.zip').stat().st_size:,} B",
         thin32["size_bytes"] < 150_000],
        ["thinned int8 NumPy bundle < 50 KB (files; .zip)",
         f"{thin8['size_bytes']:,} B; {numpy_bundles['thinned int8'].with_suffix('.zip').stat().st_size:,} B",
         thin8["size_bytes"] < 50_000],
        ["thinned int8: accuracy change <= 0.5 point (run's test windows; all windows)",
         f"{change8} on {thin8.get('checks', {}).get('windows')}; "
         f"{everywhere['thinned int8'][0] - everywhere['thinned float32'][0]:+.4f} on "
         f"{everywhere['thinned int8'][1]}",
         abs(everywhere["thinned int8"][0] - everywhere["thinned float32"][0]) <= 0.005],
    ])
    kept = manifests["thinned none"]["metrics"].get("compression", {})
    body = (f"Original: {original} ({manifests['original none']['parameters']['exported']:,} "
            f"exported parameters); thinned: {thinned} "
            f"({manifests['thinned none']['parameters']['exported']:,}; compression "
            f"{json.dumps({k: v for k, v in kept.items() if not isinstance(v, dict)})}).\n"
            f"Batch 1, {args.windows} windows x {args.rounds} rounds per model, one pinned core, "
            "BLAS and TensorFlow pools at 1 thread; Keras is `model(x, training=False)` inside "
            "a `tf.function` with a fixed input signature. Ratios are within this one run.\n\n"
            f"### Latency\n\n{latency}\n\n"
            f"### NumPy runtime against the arithmetic\n\nBatch 1 and batches of {BATCH} "
            "(LiteRT's flatbuffer has batch 1: one invoke per window). Peak: a 1024^3 float32 "
            f"matmul through NumPy's BLAS on the same pinned core, {peak['gflops']:.1f} "
            "GFLOP/s (the core's theoretical AVX-512 peak is 2 FMA x 16 lanes x 2 flops per "
            "cycle).\n\n"
            f"{arithmetic}\n\n{arithmetic_goals}\n\n### Bundle sizes\n\n{sizes}\n\n"
            "### Small NumPy-only bundles (`export --weights float32|float16|int8`)\n\n"
            "size_bytes is the manifest's sum of its files (what the goals count); the "
            "manifest adds a few KB; the .zip is what ships.\n\n"
            f"{small}\n\n"
            f"### Memory\n\n{memory}\n\n### Goals\n\n{goals}\n")
    write_section("Edge runtime", "PYTHONPATH=. .venv/bin/python bench/bench_edge.py "
                  f"--out {args.out}" + (f" --original {args.original} --thinned "
                                         f"{args.thinned}" if args.original else ""), body)


if __name__ == "__main__":
    main()
