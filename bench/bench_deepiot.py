"""DeepIoT against magnitude pruning (DyNS-style) and L1-norm filter pruning (issue 4).

    PYTHONPATH=. .venv/bin/python bench/bench_deepiot.py [--step-interval 40] [--quick]

Cases: synthetic activity recognition with user a held out (HHAR protocol), synthetic
UserID (split time:0.3), BasicMotions (UEA train/test files). Per case a full-size DeepSense
(516,726 parameters) is trained (Adam lr 1e-3) and then:

- DeepIoT: compressor-critic compression to the case's target (`deepiot.compress`), the
  thinned model (`deepiot.thin`) fine-tuned with the mask fixed, with and without
  distillation from the original model (the same compressed start point for both);
- L1-norm structured pruning at DeepIoT's parameter budget (one keep ratio for all layers,
  the units of largest L1 norm), thinned the same way and fine-tuned with the same recipe
  (distillation weight 0.5, as `deepsense compress` does);
- magnitude pruning with retraining (DyNS-style, unstructured) to the same number of
  non-zero parameters, as many epochs as the fine-tuning, with the same distillation.

Latency: one window, batch 1, one thread, Keras model under tf.function, measured in a
subprocess so that training keeps both cores; median over interleaved rounds; each model
as saved (GRU time loop) and rebuilt with unrolled GRUs (what a LiteRT export uses).
Goals: <= 7% of the parameters left with <= 1 point of accuracy lost on activity; <= 2% left
on UserID; thinned latency <= 30% of the original; DeepIoT at least as accurate as both
baselines at the same budget; compression of the HHAR-size model under 30 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from common import (markdown_table, median_latency_ms, single_thread_tensorflow,  # noqa: E402
                    write_section)

from deepsense.config import load_config  # noqa: E402
from deepsense.data.features import FeatureConfig  # noqa: E402
from deepsense.data.prepared import PreparedDataset, prepare_recordings  # noqa: E402
from deepsense.data.synthetic import ACTIVITIES, SyntheticSpec, make_recordings  # noqa: E402
from deepsense.data.ts_format import read_ts  # noqa: E402

TINY_MODEL = ["model.conv_filters=8", "model.merge_filters=8", "model.gru_units=[12, 12]"]
#: The product's recipe (`deepsense compress`): fine-tuning distils the original model.
DEEPIOT = "DeepIoT, distilled"


@dataclass
class Case:
    name: str
    slug: str
    dataset: PreparedDataset
    settings: list[str]
    target: float
    max_accuracy_loss: float | None  # goal in points, or None


# ---------------------------------------------------------------- latency (subprocess)
def time_models(spec_path: Path) -> dict[str, float]:
    """Median ms per window (batch 1, one thread) of each saved model in the spec file."""
    tf = single_thread_tensorflow()
    import keras

    import deepsense.layers  # noqa: F401  (registers the custom layers for loading)

    spec = json.loads(spec_path.read_text())
    x = np.load(spec["windows"])
    functions = {}
    for name, path in spec["models"].items():
        model = keras.saving.load_model(path)
        functions[name] = tf.function(lambda window, m=model: m(window, training=False),
                                      input_signature=[tf.TensorSpec((1, *x.shape[1:]))])
    if spec.get("bundles"):  # the NumPy edge runtime (edge.runtime)
        from edge.runtime import load_bundle

        for name, path in spec["bundles"].items():
            functions[f"{name} @edge"] = load_bundle(path).predict
    return median_latency_ms(functions, x, spec["rounds"])


def export_for_edge(source_run: Path, model, directory: Path) -> Path:
    """An edge bundle of `model` (a run directory like `source_run`, then export_bundle)."""
    from deepsense.export import export_bundle
    from deepsense.model import count_parameters

    run = directory / "run"
    run.mkdir(parents=True, exist_ok=True)
    info = json.loads((source_run / "run.json").read_text())
    info["parameters"] = count_parameters(model)
    info["data_path"] = None  # no parity checks here: the benchmark measures latency
    (run / "run.json").write_text(json.dumps(info, indent=2))
    shutil.copy(source_run / "config.resolved.toml", run / "config.resolved.toml")
    model.save(run / "model.keras")
    return export_bundle(run, directory / "bundle", quantize="none", make_zip=False)


def measure_latency(models: dict[str, Path], x: np.ndarray, work: Path, rounds: int,
                    bundles: dict[str, Path] | None = None) -> dict:
    np.save(work / "latency_windows.npy", x)
    spec = work / "latency.json"
    spec.write_text(json.dumps({"models": {k: str(v) for k, v in models.items()},
                                "bundles": {k: str(v) for k, v in (bundles or {}).items()},
                                "windows": str(work / "latency_windows.npy"), "rounds": rounds}))
    # one core: NumPy's BLAS threads too (TensorFlow's pools are set in time_models)
    env = {**os.environ, **{k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                             "MKL_NUM_THREADS")}}
    out = subprocess.run([sys.executable, __file__, "--latency", str(spec)], check=True,
                         capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------- one case
def run_case(case: Case, args, work: Path) -> dict:
    import keras

    from deepiot.baselines import l1_norm_masks, magnitude_prune
    from deepiot.compress import CompressSettings, compress
    from deepiot.cost import model_cost
    from deepiot.finetune import FineTuneSettings, fine_tune
    from deepiot.masks import kept_widths
    from deepiot.report import calibration, units_table
    from deepiot.run import split_arrays
    from deepiot.schedule import ThresholdSchedule
    from deepiot.structure import read_structure
    from deepiot.thin import thin_model
    from deepsense.model import build_deepsense
    from deepsense.train import fit

    out = work / case.slug
    config = load_config(None, case.settings)
    print(f"== {case.name}: training the full model", flush=True)
    trained = fit(case.dataset, config, out / "run", verbose=2)
    model = trained.model
    a = split_arrays(case.dataset, config)
    structure = read_structure(model)
    full = model_cost(structure)

    def score(m) -> dict:
        return calibration(a.y_test, m.predict(a.x_test, verbose=0, batch_size=256))

    results = {"original": {**score(model), "parameters": full["trainable"],
                            "bytes": full["bytes"], "flops": full["flops"]}}
    models = {"original": out / "original.keras"}
    model.save(models["original"])

    print(f"== {case.name}: DeepIoT to {100 * case.target:g}% of the parameters", flush=True)
    schedule = ThresholdSchedule(step_interval=args.step_interval)
    compressed = compress(model, a.x, a.y, a.x_val, a.y_val, schedule=schedule,
                          settings=CompressSettings(target_params=case.target, seed=0),
                          progress=lambda r: print(f"  {r}", flush=True))
    widths = kept_widths(compressed.masks)
    cost = model_cost(structure, widths)
    thinned = thin_model(compressed.critic, compressed.masks, features=case.dataset.features,
                         config=config.model, task=config.train.task)
    budget = cost["trainable"]
    sizes = {"parameters": budget, "bytes": cost["bytes"], "flops": cost["flops"]}
    results["DeepIoT, before fine-tuning"] = {**score(thinned), **sizes}
    start_weights = thinned.get_weights()
    teacher = (model.predict(a.x, verbose=0, batch_size=256),
               model.predict(a.x_val, verbose=0, batch_size=256))
    recipe = FineTuneSettings(epochs=args.fine_tune_epochs, distill_weight=0.5)
    fine_tune_seconds = {}
    for label, weight in ((DEEPIOT, 0.5), ("DeepIoT, labels only", 0.0)):
        thinned.set_weights(start_weights)
        started = time.perf_counter()
        fine_tune(thinned, a.x, a.y, a.x_val, a.y_val,
                  FineTuneSettings(epochs=args.fine_tune_epochs, distill_weight=weight),
                  teacher=teacher)
        fine_tune_seconds[label] = time.perf_counter() - started
        results[label] = {**score(thinned), **sizes}
        models[label] = out / f"deepiot_distill_{weight}.keras"
        thinned.save(models[label])

    print(f"== {case.name}: L1-norm structured pruning at {budget:,} parameters", flush=True)
    masks = l1_norm_masks(model, structure, budget / full["trainable"])
    l1 = thin_model(model, masks, features=case.dataset.features, config=config.model,
                    task=config.train.task)
    from deepiot.batchnorm import recalibrate_model

    recalibrate_model(l1, a.x)
    fine_tune(l1, a.x, a.y, a.x_val, a.y_val, recipe, teacher=teacher)
    l1_cost = model_cost(structure, kept_widths(masks))
    results["L1-norm filters"] = {**score(l1), "parameters": l1_cost["trainable"],
                                  "bytes": l1_cost["bytes"], "flops": l1_cost["flops"]}
    models["L1-norm filters"] = out / "l1.keras"
    l1.save(models["L1-norm filters"])

    print(f"== {case.name}: magnitude pruning (DyNS-style) to {budget:,} non-zeros", flush=True)
    pruned = magnitude_prune(model, a.x, a.y, a.x_val, a.y_val, budget, recipe,
                             teacher=teacher[0])
    results["magnitude (DyNS-style)"] = {**score(pruned.model),
                                         "parameters": pruned.nonzero_parameters,
                                         "bytes": pruned.dense_bytes,
                                         "sparse_bytes": pruned.sparse_bytes,
                                         "flops": full["flops"]}
    models["magnitude (DyNS-style)"] = out / "magnitude.keras"
    pruned.model.save(models["magnitude (DyNS-style)"])

    print(f"== {case.name}: latency", flush=True)
    layer_widths = {DEEPIOT: structure.layer_widths(widths), "DeepIoT, labels only":
                    structure.layer_widths(widths),
                    "L1-norm filters": structure.layer_widths(kept_widths(masks))}
    for name, path in list(models.items()):  # the same weights with unrolled GRUs
        saved = keras.saving.load_model(path)
        copy = build_deepsense(case.dataset.features, saved.output.shape[-1], config.train.task,
                               config.model, unroll=True, widths=layer_widths.get(name))
        copy.set_weights(saved.get_weights())
        models[f"{name} @unrolled"] = path.with_name(path.stem + "_unrolled.keras")
        copy.save(models[f"{name} @unrolled"])
    bundles = {}
    print(f"== {case.name}: edge bundles (NumPy runtime)", flush=True)
    for name in ("original", DEEPIOT, "L1-norm filters"):
        slug = name.split(",")[0].split(" ")[0].lower()
        bundles[name] = export_for_edge(out / "run", keras.saving.load_model(models[name]),
                                        out / f"edge_{slug}")
    latency = measure_latency(models, a.x_test[:20], out, rounds=args.latency_rounds,
                              bundles=bundles)
    for name, ms in latency.items():
        model_name, _, variant = name.partition(" @")
        key = {"": "latency_ms", "unrolled": "latency_unrolled_ms", "edge": "latency_edge_ms"}
        results[model_name][key[variant]] = ms
    return {"case": case, "results": results, "units": units_table(structure, compressed.masks),
            "l1_units": units_table(structure, masks),
            "history": compressed.history, "stop_reason": compressed.stop_reason,
            "compress_seconds": compressed.seconds, "iterations": compressed.iterations,
            "fine_tune_seconds": fine_tune_seconds,
            "n_train": len(a.x), "n_test": len(a.x_test), "epochs": trained.info.epochs_run,
            "train_seconds": trained.info.train_seconds}


# ---------------------------------------------------------------- report
def _mb(n: float) -> str:
    return f"{n / 1e6:.3f}"


def case_table(outcome: dict) -> str:
    results = outcome["results"]
    base = results["original"]
    rows = []
    for name, r in results.items():
        latency, unrolled = r.get("latency_ms"), r.get("latency_unrolled_ms")
        edge = r.get("latency_edge_ms")
        sparse = f" ({_mb(r['sparse_bytes'])} sparse)" if "sparse_bytes" in r else ""
        rows.append([
            name, f"{100 * r['parameters'] / base['parameters']:.2f}%", f"{r['parameters']:,}",
            _mb(r["bytes"]) + sparse,
            f"{r['flops'] / 1e6:.2f}", f"{r['accuracy']:.4f}",
            f"{100 * (r['accuracy'] - base['accuracy']):+.2f}", f"{r['nll']:.3f}",
            f"{r['ece']:.3f}",
            f"{latency:.2f} ({100 * latency / base['latency_ms']:.0f}%)" if latency else "-",
            f"{unrolled:.2f} ({100 * unrolled / base['latency_unrolled_ms']:.0f}%)"
            if unrolled else "-"]
            + ([f"{edge:.2f} ({100 * edge / base['latency_edge_ms']:.0f}%)" if edge else "-"]
               if "latency_edge_ms" in base else []))
    edge_column = ["NumPy edge runtime: ms (vs original)"] if "latency_edge_ms" in base else []
    return markdown_table(["model", "params left", "params (non-zero)", "float32 MB",
                           "MFLOPs/window", "accuracy", "change (pt)", "NLL", "ECE",
                           "latency ms (vs original)", "unrolled GRU: ms (vs original)",
                           *edge_column], rows)


def units_table_md(outcomes: list[dict]) -> str:
    """Units kept per group: DeepIoT and the L1-norm baseline side by side per case."""
    groups = [row["group"] for row in outcomes[0]["units"]]
    rows = []
    for index, group in enumerate(groups):
        cells = [f"{o['units'][index]['kept']} / {o['l1_units'][index]['kept']}"
                 for o in outcomes]
        rows.append([f"{group} ({outcomes[0]['units'][index]['units']})", *cells])
    return markdown_table(["layer (units)", *[f"{o['case'].name}: DeepIoT / L1"
                                              for o in outcomes]], rows)


def goals_table(outcomes: list[dict]) -> tuple[str, list[str]]:
    rows, missed = [], []

    def goal(what: str, value: str, target: str, met: bool) -> None:
        rows.append([what, value, target, "yes" if met else "**no**"])
        if not met:
            missed.append(what)

    for o in outcomes:
        r, case = o["results"], o["case"]
        deepiot = r[DEEPIOT]
        left = deepiot["parameters"] / r["original"]["parameters"]
        goal(f"{case.name}: parameters left", f"{100 * left:.2f}%",
             f"<= {100 * case.target:g}%", left <= case.target + 1e-9)
        change = 100 * (deepiot["accuracy"] - r["original"]["accuracy"])
        if case.max_accuracy_loss is not None:
            goal(f"{case.name}: accuracy change", f"{change:+.2f} pt",
                 f">= -{case.max_accuracy_loss:g} pt", change >= -case.max_accuracy_loss)
        ratio = deepiot["latency_ms"] / r["original"]["latency_ms"]
        unrolled = deepiot["latency_unrolled_ms"] / r["original"]["latency_unrolled_ms"]
        goal(f"{case.name}: thinned latency (Keras, 1 thread)",
             f"{100 * ratio:.0f}% ({100 * unrolled:.0f}% unrolled)", "<= 30%",
             min(ratio, unrolled) <= 0.30)
        if "latency_edge_ms" in deepiot:
            edge = deepiot["latency_edge_ms"] / r["original"]["latency_edge_ms"]
            goal(f"{case.name}: thinned latency (NumPy edge runtime, 1 thread)",
                 f"{100 * edge:.0f}%", "<= 30%", edge <= 0.30)
        for baseline in ("L1-norm filters", "magnitude (DyNS-style)"):
            goal(f"{case.name}: DeepIoT vs {baseline}",
                 f"{deepiot['accuracy']:.4f} vs {r[baseline]['accuracy']:.4f}", ">=",
                 deepiot["accuracy"] >= r[baseline]["accuracy"])
        goal(f"{case.name}: compression time", f"{o['compress_seconds'] / 60:.1f} min",
             "< 30 min", o["compress_seconds"] < 1800)
    return markdown_table(["goal", "measured", "target", "met"], rows), missed


def plot_case(outcome: dict, directory: Path) -> Path:
    from deepiot.report import plot_tradeoff

    r, base = outcome["results"], outcome["results"]["original"]["parameters"]

    def point(name: str) -> list[tuple[float, float]]:
        return [(r[name]["parameters"] / base, r[name]["accuracy"])]

    series = {"DeepIoT path (validation, before fine-tuning)":
              [(h["parameter_fraction"], h["validation_accuracy"]) for h in outcome["history"]]}
    series.update({f"{name} (test)": point(name) for name in r})
    return plot_tradeoff(series, directory / f"deepiot_tradeoff_{outcome['case'].slug}.png",
                         title=f"{outcome['case'].name}: accuracy against parameters left")


# ---------------------------------------------------------------- cases
def make_cases(args) -> list[Case]:
    common = [f"train.epochs={args.epochs}",
              "train.early_stopping_patience=5"] + (TINY_MODEL if args.quick else [])
    spec = SyntheticSpec(n_users=args.users, devices=("nexus4_1", "gear_1"),
                         seconds_per_activity=args.seconds, seed=0)
    synthetic = prepare_recordings(make_recordings(spec), FeatureConfig(stride_s=1.25),
                                   activity_names=list(ACTIVITIES))
    bm = ROOT / "datasets" / "basicmotions"
    recordings = (read_ts(bm / "BasicMotions_TRAIN.ts", sample_rate_hz=10, split="train")[0]
                  + read_ts(bm / "BasicMotions_TEST.ts", sample_rate_hz=10, split="test")[0])
    basic = prepare_recordings(recordings, FeatureConfig(interval_s=0.5, n_intervals=19),
                               augment_copies=9, seed=0)  # the cases last 9.9 s
    activity, user = (0.3, 0.3) if args.quick else (0.07, 0.02)  # a tiny model has no 2%
    return [
        Case("synthetic activity (LOSO a)", "activity", synthetic,
             [*common, 'train.split="loso:a"'], activity, 1.0),
        Case("synthetic UserID", "userid", synthetic,
             [*common, 'train.task="user"', 'train.split="time:0.3"'], user, None),
        Case("BasicMotions", "basicmotions", basic,
             [*common, 'train.split="source"', "train.validation_fraction=0.2"], activity, 1.0),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12, help="pre-training epochs")
    parser.add_argument("--step-interval", type=int, default=40,
                        help="compression iterations per threshold step")
    parser.add_argument("--fine-tune-epochs", type=int, default=15)
    parser.add_argument("--users", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--latency-rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="tiny model and data, no report")
    parser.add_argument("--out", type=Path, help="keep the runs here (default: a temp dir)")
    parser.add_argument("--latency", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.latency:
        print(json.dumps(time_models(args.latency)))
        return
    if args.quick:
        args.users, args.seconds, args.epochs = 3, 12.0, 1
        args.step_interval, args.fine_tune_epochs, args.latency_rounds = 2, 1, 1
    work = args.out or Path(tempfile.mkdtemp(prefix="bench-deepiot-"))
    from deepiot.compress import CompressSettings

    compressor_lr = CompressSettings().compressor_learning_rate
    started = time.perf_counter()
    outcomes = [run_case(case, args, work) for case in make_cases(args)]
    total_min = (time.perf_counter() - started) / 60
    goals, missed = goals_table(outcomes)
    sections = []
    for o in outcomes:
        png = plot_case(o, work if args.quick else ROOT / "bench")
        ft = ", ".join(f"{k.split(', ')[1]} {v:.0f} s" for k, v in o["fine_tune_seconds"].items())
        sections.append(
            f"### {o['case'].name}\n\n{o['n_train']} training windows, {o['n_test']} test "
            f"windows; full model trained {o['epochs']} epochs in {o['train_seconds']:.0f} s. "
            f"DeepIoT: {o['iterations']} iterations in {o['compress_seconds']:.0f} s "
            f"({o['stop_reason']}), fine-tuning {ft}.\n\n{case_table(o)}\n\n"
            f"![{o['case'].name}]({png.relative_to(ROOT) if not args.quick else png})\n")
    body = (
        "Full-size DeepSense (516,726 trainable parameters) per case, trained with Adam "
        "lr 1e-3. DeepIoT: compressor LSTM(64), REINFORCE with the moving mean/std baseline, "
        f"RMSProp lr {compressor_lr:g} (released: 1e-3 at 500 iterations per step), batch 32, "
        f"threshold 0 -> 0.825 in 33 steps of {args.step_interval} iterations (the "
        "paper: 500), kept units scaled by their keep probability and folded into the next "
        "layer, then the thinned model fine-tuned with the mask fixed. Parameters are "
        "trainable ones (BatchNorm moving statistics are in the float32 size). The magnitude "
        "baseline keeps the dense shapes: its 'params' are the non-zero ones and its sparse "
        "size counts float32 values + int32 CSR indices; its latency is that of the dense "
        "model it is. Latency: batch 1, one thread, Keras under tf.function, median of "
        f"{args.latency_rounds} interleaved rounds over 20 test windows; the NumPy edge "
        "runtime (`edge.runtime.load_bundle` on a `deepsense.export.export_bundle` bundle, "
        "BLAS on one thread) in the same rounds.\n\n"
        + "\n".join(sections)
        + "\n### Units kept per layer (DeepIoT / L1-norm baseline)\n\n"
        + units_table_md(outcomes)
        + "\n\n### Goals\n\n" + goals + "\n\n"
        + (f"Missed: {', '.join(missed)}.\n\n" if missed else "All goals met.\n\n")
        + f"Whole benchmark: {total_min:.0f} min.")
    if args.quick:
        print(body)
        return
    write_section("DeepIoT compression (issue 4)",
                  "PYTHONPATH=. .venv/bin/python bench/bench_deepiot.py " + " ".join(sys.argv[1:]),
                  body)


if __name__ == "__main__":
    main()
