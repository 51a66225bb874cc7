"""Calibration under user shift in one pass, and after compression (issues 3 and 12).

    PYTHONPATH=. .venv/bin/python bench/bench_rdeepsense.py [--seeds 3] [--hapt data/hapt] [--quick]

`--hapt` is a folder prepared by ``deepsense prepare --source hapt --input <UCI HAPT>
--out data/hapt --set features.stride_s=2.5`` (datasets/hapt/README.md); without it the
HAPT case is left out.

Classification cases, each trained once per seed (train.seed) and every method predicting
the same test windows:

- synthetic activity: 6 users x 3 devices; user f is tested (the hardest user in a pilot of
  the plain model), users d and e are the validation users, a-c are fitted (split
  ``loso:f+val:d,e``; with one validation user, e, the model was nearly perfect on it and
  the validation side could choose neither w nor T);
- BasicMotions (UEA train/test files): no participant ids, so the validation side is a
  random 20% of the training cases (the same people): no user shift can be validated there;
- HAPT (real, 30 users): the UCI HAR test subjects are tested, 4 of the 21 training users
  are the validation users (1, 11, 21, 28: the 1st, 7th, 13th and 19th in id order), 17 fitted.

Methods: the plain model (softmax + cross-entropy) in one pass, with a temperature fitted
on the validation side, and under MC dropout with 50 passes (run as one batch); RDeepSense
(uncertainty head + w * NLL + (1 - w) * Brier) with the w of `--weights` that has the lowest
validation NLL, chosen per seed (every seed trains every w), after a temperature fitted on the
validation side in [1, 50] (`rdeepsense.calibrate.BOUNDS`; the unbounded fit is shown too).
The temperature folds into the logits layer: still one pass (`deepsense train --head
rdeepsense` fits and folds it itself on a split with validation users).

Compression (synthetic; `compression-hapt`: HAPT): the chosen RDeepSense run compressed
by `deepiot.run.compress_run` (what `deepsense compress` runs) to <= 7% of the parameters, and
L1-norm filter pruning at the budget DeepIoT reached, thinned and fine-tuned with the same
recipe (distillation of the original, temperature refitted on the validation users).
Regression: the Gaussian head on the synthetic speed target (m/s), same split, before and
after `compress_run`, on all test windows and on those at speed > 0 (sit and stand are a
point mass at 0, see `regression_by_target`).

Cost: milliseconds per window of the seed-0 models, one thread, in a subprocess, median over
interleaved rounds: batch 1 (one window per call; MC dropout's 50 passes in one call) and
batched (256 test windows, in calls of 256 windows; MC dropout in calls of 40 windows x 50
passes, `make_mc_dropout`'s own batching). The issue's cost goal is read on the batched column:
at batch 1 the one pass is mostly TensorFlow's fixed cost per call. Spread is the standard
deviation over seeds. `--parts` runs some parts only; processes given the same `--out` can
run parts in parallel (each rewrites the section from every part finished), and a rerun
reuses the finished runs in `--out`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (batched_ms_per_window, markdown_table, median_latency_ms,  # noqa: E402
                    single_thread_tensorflow, write_section)

from deepsense.config import CompressConfig, load_config  # noqa: E402
from deepsense.data.features import FeatureConfig  # noqa: E402
from deepsense.data.hapt import UCI_HAR_TEST_USERS  # noqa: E402
from deepsense.data.prepared import (PreparedDataset, load_prepared,  # noqa: E402
                                     prepare_recordings, save_prepared)
from deepsense.data.synthetic import ACTIVITIES, SyntheticSpec, make_recordings  # noqa: E402
from deepsense.data.ts_format import read_ts  # noqa: E402
from edge.calibration import classification_calibration, reliability_bins  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SECTION = "Calibrated uncertainty (issues 3, 12)"
SMALL_MODEL = ["model.conv_filters=32", "model.merge_filters=32", "model.gru_units=[64, 64]"]
TINY_MODEL = ["model.conv_filters=4", "model.merge_filters=4", "model.gru_units=[6, 6]"]
HAPT_VALIDATION_USERS = ("1", "11", "21", "28")
MC_PASSES = 50
#: Test windows timed batched (one call each for one pass); the timing columns' names.
TIMED_BATCH = 256
BATCH_1, BATCHED = "batch 1", f"batched ({TIMED_BATCH} windows)"
PLAIN, PLAIN_T, MC, RAW, FREE_T, ONE_PASS = (
    "plain softmax", "plain + temperature (T >= 1)", f"MC dropout k={MC_PASSES}",
    "RDeepSense, no temperature", "RDeepSense + temperature fitted freely (T may sharpen)",
    "**RDeepSense, w and T >= 1 chosen on validation**")
METRICS = ("accuracy", "nll", "ece", "brier")
#: The benchmark's parts, in the section's order; "compression" needs synthetic's runs,
#: "compression-hapt" HAPT's.
PARTS = ("synthetic", "basicmotions", "hapt", "compression", "compression-hapt", "regression")
#: The classification case each compression part compresses the chosen runs of.
COMPRESSED_CASE = {"compression": "synthetic", "compression-hapt": "hapt"}
#: Where a classification part records the scoring weight chosen for each seed.
CHOSEN_FILE = "chosen_weight.json"


@dataclass
class Case:
    """One classification dataset, its split and what its validation side is."""

    key: str
    name: str
    dataset: PreparedDataset
    data_dir: Path  # the same windows on disk, where `compress_run` reads them
    settings: list[str]
    validation: str


# ---------------------------------------------------------------- data
def synthetic_dataset(args) -> PreparedDataset:
    spec = SyntheticSpec(n_users=args.users, seconds_per_activity=args.seconds, seed=0)
    return prepare_recordings(make_recordings(spec), FeatureConfig(stride_s=1.25),
                              activity_names=list(ACTIVITIES))


def _saved(ds: PreparedDataset, folder: Path) -> Path:
    """`folder`, holding `ds` (written once: parallel processes share it)."""
    return folder if folder.exists() else save_prepared(ds, folder)


def make_cases(args, work: Path) -> list[Case]:
    synthetic = synthetic_dataset(args)
    users = synthetic.user_names
    test, val = users[-1], users[-3:-1]
    cases = [Case("synthetic", f"synthetic activity, user {test} tested", synthetic,
                  _saved(synthetic, work / "synthetic" / "data"),
                  [*args.common, f'train.split="loso:{test}+val:{",".join(val)}"'],
                  f"validation users {', '.join(val)} (never fitted)")]
    folder = ROOT / "datasets" / "basicmotions"
    recordings = (read_ts(folder / "BasicMotions_TRAIN.ts", sample_rate_hz=10, split="train")[0]
                  + read_ts(folder / "BasicMotions_TEST.ts", sample_rate_hz=10, split="test")[0])
    basicmotions = prepare_recordings(recordings, FeatureConfig(interval_s=0.5, n_intervals=19),
                                      augment_copies=9, seed=0)
    cases.append(Case(
        "basicmotions", "BasicMotions (UEA split)", basicmotions,
        _saved(basicmotions, work / "basicmotions" / "data"),
        [*args.common, 'train.split="source"', "train.validation_fraction=0.2",
         f"train.epochs={args.bm_epochs}"],
        "a random 20% of the training cases (no participant ids: same people)"))
    if args.hapt:
        test_users = ",".join(str(u) for u in UCI_HAR_TEST_USERS)
        cases.append(Case(
            "hapt", "HAPT, UCI HAR test subjects tested", load_prepared(args.hapt), args.hapt,
            [*args.common, f"train.epochs={args.hapt_epochs}",
             f"train.early_stopping_patience={args.hapt_patience}",
             f'train.split="users:{test_users}+val:{",".join(HAPT_VALIDATION_USERS)}"'],
            f"validation users {', '.join(HAPT_VALIDATION_USERS)} (never fitted)"))
    return cases


# ---------------------------------------------------------------- training
def train_seed(case: Case, seed: int, weights: list[float], work: Path) -> dict:
    """The plain run and one RDeepSense run per weight, for one seed: run directories."""
    from deepsense.train import fit
    from rdeepsense.train import fit_rdeepsense

    root = work / case.key / f"seed{seed}"
    config = load_config(None, [*case.settings, f"train.seed={seed}"])
    _timed(f"{case.key} seed {seed}: plain", lambda: fit(
        case.dataset, config, root / "plain", data_path=case.data_dir, verbose=0), root / "plain")
    rdeepsense = {}
    for weight in weights:
        run = rdeepsense_dir(work, case.key, seed, weight)
        cfg = load_config(None, [*case.settings, f"train.seed={seed}", 'train.head="rdeepsense"',
                                 f"train.scoring_weight={weight}"])
        _timed(f"{case.key} seed {seed}: rdeepsense w={weight}", lambda: fit_rdeepsense(
            case.dataset, cfg, run, data_path=case.data_dir, verbose=0), run)
        rdeepsense[weight] = run
    return {"plain": root / "plain", "rdeepsense": rdeepsense}


def rdeepsense_dir(work: Path, key: str, seed: int, weight: float) -> Path:
    return work / key / f"seed{seed}" / f"rdeepsense_w{weight}"


def _timed(label: str, work, run: Path) -> None:
    """Run `work` (a training), unless `run` is already a finished run directory (a rerun
    with the same --out continues where an earlier one stopped)."""
    if (run / "run.json").exists():
        print(f"  {label}: kept from an earlier run", flush=True)
        return
    started = time.perf_counter()
    result = work()
    print(f"  {label}: {result.info.epochs_run} epochs, {time.perf_counter() - started:.0f} s",
          flush=True)


# ---------------------------------------------------------------- predictions
def _batched(predict, x: np.ndarray, size: int = 256) -> np.ndarray:
    return np.concatenate([predict(x[i:i + size]) for i in range(0, len(x), size)])


def _rows(case: Case, seed: int):
    from deepsense.run import split_rows

    return split_rows(case.dataset, load_config(None, [*case.settings,
                                                       f"train.seed={seed}"]).train)


def evaluate_seed(case: Case, runs: dict, seed: int) -> dict:
    """Test metrics and probabilities per method, the w chosen and its temperature.

    Every temperature is fitted on the validation side from raw logits (a temperature
    `train` folded into a model is undone first), in `rdeepsense.calibrate.BOUNDS` (the
    product's rule: soften only), except FREE_T's, fitted in `T_BOUNDS`."""
    from deepsense.run import load_run
    from rdeepsense import predictors
    from rdeepsense.calibrate import BOUNDS
    from rdeepsense.temperature import apply_temperature, fit_temperature

    ds, rows = case.dataset, _rows(case, seed)
    x_val, y_val = ds.x[rows.validation], ds.activity[rows.validation]
    x_test, y_test = ds.x[rows.test], ds.activity[rows.test]
    probs = {}
    plain = load_run(runs["plain"])[0]
    logits = predictors.make_logits(plain)
    plain_t = fit_temperature(_batched(logits, x_val), y_val, BOUNDS)
    test_logits = _batched(logits, x_test)
    probs[PLAIN] = apply_temperature(test_logits, 1.0)
    probs[PLAIN_T] = apply_temperature(test_logits, plain_t)
    probs[MC] = _batched(predictors.make_mc_dropout(plain, MC_PASSES, "probabilities"), x_test)
    sweep = {}
    for weight, run in runs["rdeepsense"].items():
        model, info = load_run(run)
        folded = (info.calibration or {}).get("temperature", 1.0)
        logits = predictors.make_logits(model)
        val_logits = _batched(logits, x_val) * folded  # raw logits
        temperature = fit_temperature(val_logits, y_val, BOUNDS)
        sweep[weight] = {
            "temperature": temperature, "free_temperature": fit_temperature(val_logits, y_val),
            "val_nll": classification_calibration(
                y_val, apply_temperature(val_logits, temperature))["nll"],
            "val_nll_raw": classification_calibration(
                y_val, apply_temperature(val_logits, 1.0))["nll"],
            "test_logits": _batched(logits, x_test) * folded}
    chosen = min(sweep, key=lambda w: sweep[w]["val_nll"])
    best = sweep[chosen]
    probs[RAW] = apply_temperature(best["test_logits"], 1.0)
    probs[FREE_T] = apply_temperature(best["test_logits"], best["free_temperature"])
    probs[ONE_PASS] = apply_temperature(best["test_logits"], best["temperature"])
    metrics = {name: classification_calibration(y_test, p) for name, p in probs.items()}
    for name, m in metrics.items():
        print(f"  {case.key} seed {seed}: {name}: accuracy {m['accuracy']:.4f}, "
              f"NLL {m['nll']:.4f}, ECE {m['ece']:.4f}", flush=True)
    return {"metrics": metrics, "probs": probs, "y": y_test, "chosen": chosen,
            "plain_temperature": plain_t, "n_test": len(y_test), "n_val": len(y_val),
            "sweep": {w: {k: v for k, v in s.items() if k != "test_logits"}
                      for w, s in sweep.items()}}


# ---------------------------------------------------------------- timing (subprocess)
def build_timed(spec: dict):
    """One pass of the run's model, or MC dropout of it (a folded temperature costs nothing)."""
    from deepsense.run import load_run
    from rdeepsense import predictors

    model = load_run(spec["run"])[0]
    if spec["kind"] == "mc":
        return predictors.make_mc_dropout(model, MC_PASSES, "probabilities")
    return predictors.make_one_pass(model)


def time_methods(spec_path: Path) -> dict[str, dict[str, float]]:
    """Median ms per window (one thread) of each method in the spec file: {BATCH_1: ...,
    BATCHED: ...}."""
    single_thread_tensorflow()
    spec = json.loads(spec_path.read_text())
    functions = {m["name"]: build_timed(m) for m in spec["methods"]}
    windows = np.load(spec["windows"])
    return {BATCH_1: median_latency_ms(functions, windows[:10], spec["rounds"], warmup=3),
            BATCHED: batched_ms_per_window(functions, windows, spec["rounds"],
                                           batch=TIMED_BATCH)}


def measure_times(case: Case, runs: dict, result: dict, work: Path,
                  rounds: int) -> dict[str, dict[str, float]]:
    windows = work / f"{case.key}_windows.npy"
    np.save(windows, case.dataset.x[_rows(case, 0).test[:TIMED_BATCH]])
    chosen = result["chosen"]
    methods = [{"name": PLAIN, "kind": "one_pass", "run": str(runs["plain"])},
               {"name": MC, "kind": "mc", "run": str(runs["plain"])},
               {"name": ONE_PASS, "kind": "one_pass", "run": str(runs["rdeepsense"][chosen])}]
    spec_path = work / f"{case.key}_timing.json"
    spec_path.write_text(json.dumps({"methods": methods, "windows": str(windows),
                                     "rounds": rounds}))
    out = subprocess.run([sys.executable, __file__, "--timing", str(spec_path)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------- compression
def _write_chosen(work: Path, key: str, seed: int, weight: float) -> None:
    path = work / key / CHOSEN_FILE
    chosen = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**chosen, str(seed): weight}))


def chosen_run(work: Path, key: str, seed: int, poll_s: float = 30.0) -> Path:
    """The chosen RDeepSense run of a seed, waiting for it if a parallel process is still
    training it (the classification part writes `CHOSEN_FILE` once the seed is evaluated)."""
    chosen = work / key / CHOSEN_FILE
    while True:
        weight = json.loads(chosen.read_text()).get(str(seed)) if chosen.exists() else None
        if weight is not None:
            return rdeepsense_dir(work, key, seed, weight)
        print(f"  waiting for the chosen run of {key} seed {seed}", flush=True)
        time.sleep(poll_s)


def recalibrate(case: Case, run: Path) -> None:
    """Refit a run's folded temperature by the current `rdeepsense.calibrate` rule (runs
    trained before the rule changed, or stopped between training and calibration)."""
    from deepsense.run import MODEL_FILE, load_run
    from rdeepsense.calibrate import calibrate_on_validation_users, fold_temperature

    model, info = load_run(run)
    if info.task == "regression":
        return
    fold_temperature(model, 1.0 / (info.calibration or {}).get("temperature", 1.0))
    calibration = calibrate_on_validation_users(model, case.dataset, info.run_config.train)
    model.save(run / MODEL_FILE)
    replace(info, calibration=calibration).write(run)


def deepiot_dir(work: Path, key: str, seed: int, run: Path) -> Path:
    return work / key / f"seed{seed}" / f"deepiot_{run.name}"


def compress_seed(case: Case, run: Path, seed: int, work: Path, settings: CompressConfig,
                  baseline: bool = True) -> dict:
    """DeepIoT (`compress_run`) and, for classification, L1-norm pruning at its budget."""
    from deepiot.baselines import l1_norm_masks
    from deepiot.finetune import fine_tune
    from deepiot.masks import kept_widths
    from deepiot.report import summarize_model
    from deepiot.run import compress_run, compression_settings, run_objective, split_arrays
    from deepiot.structure import read_structure
    from deepiot.thin import thin_model
    from deepsense.run import load_run
    from rdeepsense.calibrate import calibrate_on_validation_users

    settings = replace(settings, seed=seed)
    out = deepiot_dir(work, case.key, seed, run)
    kept = out / "bench_result.json"
    if kept.exists():
        return json.loads(kept.read_text())
    started = time.perf_counter()
    done = out / "compression_report.json"
    if not done.exists():
        recalibrate(case, run)
    report = (json.loads(done.read_text()) if done.exists()
              else compress_run(run, out, compress_config=settings))
    print(f"  {case.key} seed {seed}: DeepIoT of {run.name}: "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    fraction = report["relative_to_original"]["compressed"]["parameters"]
    result = {"fraction": fraction, "original": report["models"]["original"],
              "DeepIoT": report["models"]["compressed"]}
    if not baseline:
        kept.write_text(json.dumps(result))
        return result
    model, info = load_run(run)
    config = info.run_config
    arrays = split_arrays(case.dataset, config)
    structure = read_structure(model)
    masks = l1_norm_masks(model, structure, fraction)
    l1 = thin_model(model, masks, features=case.dataset.features, config=config.model,
                    task=config.train.task)
    teacher = (model.predict(arrays.x, verbose=0, batch_size=256),
               model.predict(arrays.x_val, verbose=0, batch_size=256))
    objective = run_objective(config)
    fine_tune(l1, arrays.x, arrays.y, arrays.x_val, arrays.y_val,
              compression_settings(settings)[2], objective=objective, teacher=teacher)
    calibrate_on_validation_users(l1, case.dataset, config.train)
    result["L1-norm filters"] = summarize_model(
        structure, kept_widths(masks), arrays.y_test,
        l1.predict(arrays.x_test, verbose=0, batch_size=256))
    result["L1 fraction"] = (result["L1-norm filters"]["parameters"]
                             / result["original"]["parameters"])
    print(f"  {case.key} seed {seed}: L1 {result['L1-norm filters']}", flush=True)
    kept.write_text(json.dumps(result))
    return result


def regression_by_target(case: Case, run: Path, compressed: Path) -> dict:
    """Test metrics of the original and the DeepIoT model of a regression run, on the windows
    whose speed is > 0 (the moving activities) and the share of windows at speed 0.

    Speed 0 (sit, stand) is a point mass: a model that gets such a window right (error well
    inside its std) covers it at every interval level, so over all windows a model calibrated
    on the moving windows covers about share_0 + (1 - share_0) * level."""
    from deepiot.run import split_arrays
    from deepsense.run import load_run
    from edge.calibration import regression_calibration

    model, info = load_run(run)
    arrays = split_arrays(case.dataset, info.run_config)
    y = arrays.y_test.reshape(-1)
    moving = y > 0
    result = {"share_0": float(np.mean(~moving))}
    for name, predictor in (("original", model), ("DeepIoT", load_run(compressed)[0])):
        out = predictor.predict(arrays.x_test[moving], verbose=0, batch_size=256)
        result[name] = regression_calibration(y[moving], out[:, 0], out[:, 1])
    return result


def train_regression(case: Case, seed: int, work: Path):
    from rdeepsense.train import fit_rdeepsense

    run = work / "regression" / f"seed{seed}" / "rdeepsense"
    cfg = load_config(None, [*case.settings, f"train.seed={seed}", 'train.head="rdeepsense"',
                             'train.task="regression"'])
    _timed(f"regression seed {seed}: rdeepsense", lambda: fit_rdeepsense(
        case.dataset, cfg, run, data_path=case.data_dir, verbose=0), run)
    return run


# ---------------------------------------------------------------- report
def mean_spread(values: list[float], digits: int = 4) -> str:
    values = np.asarray(values, dtype=np.float64)
    spread = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.{digits}f} ± {spread:.{digits}f}"


def _mean(results: list[dict], method: str, metric: str) -> float:
    return float(np.mean([r["metrics"][method][metric] for r in results]))


def classification_section(case: Case, results: list[dict], times: dict, png: str) -> str:
    methods = list(results[0]["metrics"])
    rows = []
    for name in methods:
        cost = [f"{t[name]:.2f} ({t[name] / t[MC]:.3f})" if name in t else "-"
                for t in (times[BATCH_1], times[BATCHED])]
        rows.append([name, *(mean_spread([r["metrics"][name][m] for r in results])
                             for m in METRICS), *cost])
    table = markdown_table(["method", "accuracy", "NLL", "ECE", "Brier",
                            *(f"ms/window, {t} (vs {MC})" for t in (BATCH_1, BATCHED))], rows)
    weights = list(results[0]["sweep"])
    sweep_rows = [[seed, *(f"{r['sweep'][w]['val_nll_raw']:.3f} / {r['sweep'][w]['val_nll']:.3f}"
                           f" (T {r['sweep'][w]['temperature']:.2f}; free "
                           f"{r['sweep'][w]['free_temperature']:.2f})" if w in r["sweep"] else "-"
                           for w in weights), r["chosen"], f"{r['plain_temperature']:.2f}"]
                  for seed, r in enumerate(results)]
    sweep = markdown_table(["seed", *(f"w={w}: val NLL raw / after T" for w in weights),
                            "w chosen", "plain T"], sweep_rows)
    one, mc, plain = ({k: _mean(results, m, k) for k in METRICS} for m in (ONE_PASS, MC, PLAIN))
    cost = times[BATCHED][ONE_PASS] / times[BATCHED][MC]
    parts = [("NLL", one["nll"] <= mc["nll"], f"{one['nll']:.4f} vs {mc['nll']:.4f}"),
             ("ECE", one["ece"] <= mc["ece"], f"{one['ece']:.4f} vs {mc['ece']:.4f}"),
             ("cost", cost <= 0.1, f"{cost:.3f} of MC dropout's, batched (goal <= 0.1)"),
             ("accuracy", one["accuracy"] >= plain["accuracy"] - 0.005,
              f"{one['accuracy']:.4f} vs plain {plain['accuracy']:.4f} (goal >= plain - 0.005)")]
    wins = sum(r["metrics"][ONE_PASS]["nll"] <= r["metrics"][MC]["nll"]
               and r["metrics"][ONE_PASS]["ece"] <= r["metrics"][MC]["ece"] for r in results)
    missed = [name for name, ok, _ in parts if not ok]
    goal = ("one pass vs MC dropout k=50, means over seeds: "
            + "; ".join(f"{name} {text}" for name, _, text in parts)
            + f"; NLL and ECE both <= in {wins} of {len(results)} seeds: "
            + (f"**missed: {', '.join(missed)}**" if missed else "**met**"))
    r0 = results[0]
    return (f"### {case.name}\n\n{len(results)} seeds; {r0['n_test']} test windows, validation "
            f"side: {case.validation}, {r0['n_val']} windows. Mean ± standard deviation over "
            f"seeds; ms/window of the seed-0 models.\n\n{table}\n\n"
            f"Validation NLL per scoring weight (raw, then after the temperature fitted on "
            f"the validation side), per seed:\n\n{sweep}\n\nGoal: {goal}.\n\n"
            f"![reliability, {case.name}]({png})")


def plot_reliability(case: Case, results: list[dict], path: Path) -> None:
    """Accuracy against confidence, test windows of all seeds pooled, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {name: (np.concatenate([r["y"] for r in results]),
                     np.concatenate([r["probs"][name] for r in results]))
              for name in (PLAIN, MC, ONE_PASS)}
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    for name, (y, p) in curves.items():
        bins = reliability_bins(y, p)
        full = np.asarray(bins["count"]) > 0
        ece = classification_calibration(y, p)["ece"]
        ax.plot(np.asarray(bins["confidence"])[full], np.asarray(bins["accuracy"])[full],
                marker="o", label=f"{name.strip('*')} (ECE {ece:.3f})")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{case.name}\n{len(results)} seeds pooled")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compression_section(name: str, results: list[dict], n_seeds: int,
                        settings: CompressConfig) -> str:
    models = ("original", "DeepIoT", "L1-norm filters")
    fractions = {"original": [1.0] * len(results), "DeepIoT": [r["fraction"] for r in results],
                 "L1-norm filters": [r["L1 fraction"] for r in results]}
    rows = [[m, f"{100 * np.mean(fractions[m]):.2f}%",
             *(mean_spread([r[m][k] for r in results]) for k in METRICS)] for m in models]
    table = markdown_table(["model", "parameters left", *METRICS], rows)
    d_ece = [r["DeepIoT"]["ece"] - r["original"]["ece"] for r in results]
    d_nll = [r["DeepIoT"]["nll"] / r["original"]["nll"] - 1 for r in results]
    d_acc = [r["DeepIoT"]["accuracy"] - r["L1-norm filters"]["accuracy"] for r in results]
    fraction = max(r["fraction"] for r in results)
    goals = [("parameters <= 7%", fraction <= 0.07, f"at most {100 * fraction:.2f}%"),
             ("ECE at most 0.02 above the original's", np.mean(d_ece) <= 0.02,
              f"change {mean_spread(d_ece)} (<= 0.02 in {sum(d <= 0.02 for d in d_ece)} of "
              f"{len(d_ece)} seeds)"),
             ("NLL at most 10% above the original's", np.mean(d_nll) <= 0.10,
              f"change {mean_spread([100 * d for d in d_nll], 1)}% (<= 10% in "
              f"{sum(d <= 0.10 for d in d_nll)} of {len(d_nll)} seeds)"),
             ("accuracy >= L1-norm at the same budget", np.mean(d_acc) >= 0,
              f"DeepIoT - L1 {mean_spread(d_acc)} (>= in {sum(d >= 0 for d in d_acc)} of "
              f"{len(d_acc)} seeds)")]
    goal_rows = [[g, text, "**met**" if ok else "**missed**"] for g, ok, text in goals]
    partial = (f" (**partial: {len(results)} of {n_seeds} seeds done**)"
               if len(results) < n_seeds else "")
    return (f"### Compression keeps calibration: {name}\n\n{len(results)} seeds{partial} (the "
            f"chosen RDeepSense run of each), test windows. DeepIoT: "
            f"{settings.step_interval} iterations per threshold step, fine-tuning at most "
            f"{settings.fine_tune_epochs} epochs.\n\n{table}\n\n"
            + markdown_table(["goal (means over seeds)", "measured", ""], goal_rows))


def regression_section(results: list[dict], settings: CompressConfig) -> str:
    """Metrics and coverage goals on all test windows and on the moving ones (speed > 0)."""
    keys = ("mae", "nll", "coverage_50", "coverage_90", "coverage_95")
    sides = (("all windows", results), ("speed > 0", [r["moving"] for r in results]))
    rows = [[m, side, *(mean_spread([r[m][k] for r in side_results], 3) for k in keys)]
            for m in ("original", "DeepIoT") for side, side_results in sides]
    table = markdown_table(["model", "test windows", "MAE (m/s)", "NLL", "50% interval",
                            "90% interval", "95% interval"], rows)
    goal_rows = []
    for m in ("original", "DeepIoT"):
        for side, side_results in sides:
            # (seeds, levels) coverage - nominal, points; a seed too wide and one too narrow
            # must not average out, so the goal reads the mean |deviation| over seeds
            off = np.array([[100 * (r[m][k] - int(k[-2:]) / 100) for k in keys[2:]]
                            for r in side_results])
            worst = float(np.abs(off).mean(axis=0).max())
            per_seed = "; ".join(f"seed {seed}: " + ", ".join(f"{v:+.1f}" for v in row)
                                 for seed, row in enumerate(off))
            goal_rows.append([m, side, per_seed, f"{worst:.1f}",
                              "**met**" if worst <= 3
                              else f"**missed** (by {worst - 3:.1f} points)"])
    share = float(np.mean([r["moving"]["share_0"] for r in results]))
    bound = ", ".join(f"{level}%: {100 * (share + (1 - share) * level / 100):.1f}%"
                      for level in (50, 90, 95))
    return (f"### Regression: Gaussian head, synthetic speed (m/s)\n\n{len(results)} seeds, "
            f"the tested user's windows; DeepIoT at "
            f"{100 * np.mean([r['fraction'] for r in results]):.2f}% of the parameters "
            f"({settings.step_interval} iterations per threshold step, fine-tuning at most "
            f"{settings.fine_tune_epochs} epochs). "
            f"{100 * share:.1f}% of the test windows are sit or stand, at speed exactly 0: a "
            "point mass, which a model that gets it right covers at every level, so over all "
            "windows a model calibrated on the rest covers share_0 + (1 - share_0) x level "
            f"({bound}). The goal is therefore also read on the windows at speed > 0.\n\n"
            f"{table}\n\n" + markdown_table(
                ["model", "test windows", "coverage - nominal at 50 / 90 / 95% (points)",
                 "largest mean absolute deviation over seeds", "goal: within 3 points"],
                goal_rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--hapt-seeds", type=int, default=2)
    parser.add_argument("--regression-seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10, help="synthetic: maximum epochs")
    parser.add_argument("--bm-epochs", type=int, default=15, help="BasicMotions: maximum epochs")
    parser.add_argument("--hapt-epochs", type=int, default=10, help="HAPT: maximum epochs")
    parser.add_argument("--hapt-patience", type=int, default=4,
                        help="HAPT: early-stopping patience (epochs; the library's default is 10)")
    parser.add_argument("--hapt", type=Path, help="prepared HAPT folder (six activities)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="what to run (in this order; parallel processes may share --out)")
    parser.add_argument("--users", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.25, 1.0])
    parser.add_argument("--step-interval", type=int, default=20,
                        help="DeepIoT iterations per threshold step")
    parser.add_argument("--fine-tune-epochs", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=5,
                        help=f"timing rounds (10 windows at batch 1, {TIMED_BATCH} batched)")
    parser.add_argument("--quick", action="store_true", help="tiny model, 1 epoch: a smoke run")
    parser.add_argument("--out", type=Path, help="keep the runs here (default: a temp dir)")
    parser.add_argument("--timing", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.timing:
        print(json.dumps(time_methods(args.timing)))
        return
    command = "PYTHONPATH=. .venv/bin/python bench/bench_rdeepsense.py " + " ".join(sys.argv[1:])
    if args.quick:
        args.epochs = args.bm_epochs = args.hapt_epochs = args.fine_tune_epochs = 1
        args.seeds = args.hapt_seeds = args.regression_seeds = 2
        args.users, args.seconds, args.rounds = 4, 12.0, 1
        args.step_interval = 1
    args.common = [*(TINY_MODEL if args.quick else SMALL_MODEL), f"train.epochs={args.epochs}",
                   "train.early_stopping_patience=4"]
    work = args.out or Path(tempfile.mkdtemp(prefix="bench-rdeepsense-"))
    work.mkdir(parents=True, exist_ok=True)
    compress_settings = CompressConfig(step_interval=args.step_interval,
                                       fine_tune_epochs=args.fine_tune_epochs)
    started = time.perf_counter()
    model_text = "tiny DeepSense" if args.quick else "DeepSense with 32-filter convs, GRU(64, 64)"
    header = (f"{model_text}; Adam lr 1e-3, batch 64, at most {args.epochs} epochs (BasicMotions "
              f"{args.bm_epochs}, HAPT {args.hapt_epochs}), early stopping (patience 4, HAPT "
              f"{args.hapt_patience}) on the validation side. Scoring weights tried: "
              f"{args.weights}. DeepIoT fine-tuning is distilled (weight 0.5; each table names "
              "its budget); L1-norm pruning is fine-tuned with the same recipe. Synthetic: "
              f"{args.users} users x 3 devices x 6 activities x {args.seconds:.0f} s, windows of "
              "20 x 0.25 s every 1.25 s. BasicMotions: 10 Hz, 19 x 0.5 s windows, training set "
              "augmented x10. HAPT: 20 x 0.25 s windows every 2.5 s, six activities.")
    cases = {case.key: case for case in make_cases(args, work)}
    parts = work / "parts"
    parts.mkdir(exist_ok=True)

    def finish(part: str, markdown: str, **saved) -> None:
        """Keep a part's markdown (and what later parts need), then rewrite the section
        from every part finished so far in `work`, by this or a parallel process."""
        (parts / f"{part}.json").write_text(json.dumps(
            {"command": command, "seconds": round(time.perf_counter() - started),
             "markdown": markdown, **saved}, default=str))
        done = {p: json.loads((parts / f"{p}.json").read_text())
                for p in PARTS if (parts / f"{p}.json").exists()}
        missing = [p for p in PARTS if p not in done
                   and (args.hapt or "hapt" not in (p, COMPRESSED_CASE.get(p)))]
        status = (f"**Partial: {', '.join(missing)} not done when this was written.**\n\n"
                  if missing else "")
        commands = " and, in parallel, ".join(dict.fromkeys(d["command"] for d in done.values()))
        write_section(SECTION, commands, status + header + "\n\n" + "\n\n".join(
            d["markdown"] for d in done.values()) + "\n\nWall time per part (s, from its "
            "process' start): " + ", ".join(f"{p} {d['seconds']}" for p, d in done.items()))

    for key in [p for p in args.parts if p in cases]:
        case = cases[key]
        n_seeds = args.hapt_seeds if key == "hapt" else args.seeds
        runs, results = [], []
        for seed in range(n_seeds):  # w is chosen per seed, on its validation side
            runs.append(train_seed(case, seed, args.weights, work))
            results.append(evaluate_seed(case, runs[-1], seed))
            _write_chosen(work, key, seed, results[-1]["chosen"])
        times = measure_times(case, runs[0], results[0], work, args.rounds)
        png = f"bench/rdeepsense_reliability_{key}.png"
        plot_reliability(case, results, ROOT / png)
        finish(key, classification_section(case, results, times, png),
               chosen=[str(r["rdeepsense"][res["chosen"]]) for r, res in zip(runs, results)])
    for part in [p for p in args.parts if COMPRESSED_CASE.get(p) in cases]:
        case, compressed = cases[COMPRESSED_CASE[part]], []
        n_seeds = args.hapt_seeds if case.key == "hapt" else args.seeds
        for seed in range(n_seeds):  # the section is rewritten after every seed
            compressed.append(compress_seed(case, chosen_run(work, case.key, seed), seed,
                                            work, compress_settings))
            finish(part, compression_section(case.name, compressed, n_seeds,
                                             compress_settings))
    if "regression" in args.parts:
        case, results = cases["synthetic"], []
        for seed in range(args.regression_seeds):
            run = train_regression(case, seed, work)
            result = compress_seed(case, run, seed, work, compress_settings, baseline=False)
            moving = regression_by_target(case, run, deepiot_dir(work, case.key, seed, run))
            results.append({**result, "moving": moving})
        finish("regression", regression_section(results, compress_settings))


if __name__ == "__main__":
    main()
