"""Calibration and cost of RDeepSense against the baselines a user would compare (issue 3).

    PYTHONPATH=. .venv/bin/python bench/bench_rdeepsense.py [--epochs 10] [--quick]

Cases: synthetic activity recognition with one user held out (6 users x 3 devices x 40 s;
user f, the held-out user with the lowest accuracy in a pilot run of the plain model, so
that there are mistakes to be calibrated about; user a is recognised perfectly), and
BasicMotions (UEA train/test files). Per case, every method predicts
the same held-out windows:

- plain DeepSense (softmax + cross-entropy), one pass;
- temperature scaling of it (T fitted on the validation windows);
- MC dropout with k = 10 and 50 passes of it (the passes of a window run as one batch);
- a deep ensemble of 5 plain models (same data and validation split, different seeds for
  initialisation and dropout);
- RDeepSense (uncertainty head + scoring rule w * NLL + (1 - w) * Brier), one pass;
- moment propagation (rdeepsense.moments) over the plain and the RDeepSense models.

The scoring weight w is chosen by the lowest validation NLL in a sweep on the synthetic
case and reused for BasicMotions. Inference time: per window, batch 1, one thread (measured
in a subprocess so that training can use both cores), median over interleaved rounds.
Shift check: mean predictive entropy on in-distribution windows against a held-out user and
against the same windows with a corrupted sensor (Gaussian noise of half the axis' standard
deviation on every axis; the accelerometer x axis stuck at its first value).
Goal: RDeepSense ECE and NLL no worse than MC dropout k = 50, at <= 1/10 of its cost, with
accuracy at most 0.5 points below the plain model.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (markdown_table, median_latency_ms, single_thread_tensorflow,  # noqa: E402
                    write_section)

from deepsense.config import load_config  # noqa: E402
from deepsense.data.features import FeatureConfig  # noqa: E402
from deepsense.data.prepared import PreparedDataset, prepare_recordings  # noqa: E402
from deepsense.data.recording import Recording, SensorStream  # noqa: E402
from deepsense.data.splits import split_indices, validation_split  # noqa: E402
from deepsense.data.synthetic import ACTIVITIES, SyntheticSpec, make_recordings  # noqa: E402
from deepsense.data.ts_format import read_ts  # noqa: E402
from edge.calibration import classification_calibration  # noqa: E402
from edge.stats import entropy  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SMALL_MODEL = ["model.conv_filters=32", "model.merge_filters=32", "model.gru_units=[64, 64]"]
TINY_MODEL = ["model.conv_filters=4", "model.merge_filters=4", "model.gru_units=[6, 6]"]
N_MEMBERS = 5
SHIFTS = ("noise", "stuck axis")


@dataclass
class Case:
    """One benchmark dataset: prepared windows, settings and the rows each method predicts."""

    name: str
    dataset: PreparedDataset
    settings: list[str]
    reference: str  # which rows are the in-distribution reference: "validation" or "test"
    corrupted: dict[str, PreparedDataset] = field(default_factory=dict)
    rows: dict[str, np.ndarray] = field(default_factory=dict)


# ---------------------------------------------------------------- data
def _noisy(recordings: list[Recording], rng: np.random.Generator) -> list[Recording]:
    """Gaussian noise of half each axis' standard deviation (over all recordings)."""
    scale = {s: 0.5 * np.concatenate([r.streams[s].values for r in recordings]).std(axis=0)
             for s in recordings[0].streams}
    return [_with_streams(r, {s: SensorStream(st.t_s, st.values + rng.normal(
        0.0, 1.0, st.values.shape) * scale[s]) for s, st in r.streams.items()})
        for r in recordings]


def _stuck(recordings: list[Recording]) -> list[Recording]:
    """The accelerometer x axis frozen at its first reading."""
    out = []
    for r in recordings:
        streams = dict(r.streams)
        values = streams["acc"].values.copy()
        values[:, 0] = values[0, 0]
        streams["acc"] = SensorStream(streams["acc"].t_s, values)
        out.append(_with_streams(r, streams))
    return out


def _with_streams(r: Recording, streams: dict[str, SensorStream]) -> Recording:
    return Recording(r.device, streams, r.user, r.label, r.target, r.source, r.split)


def _matching_rows(clean: PreparedDataset, rows: np.ndarray,
                   other: PreparedDataset) -> np.ndarray:
    """Rows of `other` holding the same (recording, start time) windows as `clean[rows]`."""
    index = {(int(rec), round(float(s), 6)): i for i, (rec, s, c) in enumerate(
        zip(other.recording, other.start_s, other.copy)) if c == 0}
    return np.array([index[(int(clean.recording[i]), round(float(clean.start_s[i]), 6))]
                     for i in rows])


def _make_case(name: str, recordings: list[Recording], features: FeatureConfig,
               settings: list[str], reference: str, augment: int = 0,
               classes: list[str] | None = None) -> Case:
    dataset = prepare_recordings(recordings, features, augment_copies=augment, seed=0,
                                 activity_names=classes)
    config = load_config(None, settings)
    t = config.train
    train, test = split_indices(dataset, t.split, seed=t.seed, use_augmented=t.augment)
    _, validation = validation_split(dataset, train, t.validation_fraction, seed=t.seed)
    case = Case(name, dataset, settings, reference, rows={"test": test, "validation": validation})
    rng = np.random.default_rng(0)
    for shift, corrupt in (("noise", lambda rs: _noisy(rs, rng)), ("stuck axis", _stuck)):
        corrupted = prepare_recordings(corrupt(recordings), features, activity_names=classes)
        case.corrupted[shift] = corrupted
        case.rows[shift] = _matching_rows(dataset, case.rows[reference], corrupted)
    return case


def synthetic_case(args) -> Case:
    spec = SyntheticSpec(n_users=args.users, seconds_per_activity=args.seconds, seed=0)
    settings = [*args.common, f'train.split="loso:{args.holdout}"']
    return _make_case(f"synthetic activity, user {args.holdout} held out",
                      make_recordings(spec), FeatureConfig(stride_s=1.25), settings,
                      "validation", classes=list(ACTIVITIES))


def basicmotions_case(args) -> Case:
    folder = ROOT / "datasets" / "basicmotions"
    recordings = (read_ts(folder / "BasicMotions_TRAIN.ts", sample_rate_hz=10, split="train")[0]
                  + read_ts(folder / "BasicMotions_TEST.ts", sample_rate_hz=10, split="test")[0])
    settings = [*args.common, 'train.split="source"', "train.validation_fraction=0.2",
                f"train.epochs={args.bm_epochs}"]
    return _make_case("BasicMotions (UEA split)", recordings,
                      FeatureConfig(interval_s=0.5, n_intervals=19), settings, "test", augment=9)


# ---------------------------------------------------------------- training
def train_runs(case: Case, work: Path, weights: list[float]) -> dict[str, list[Path] | dict]:
    """Plain ensemble members and one RDeepSense run per weight; returns their run dirs."""
    import keras

    from deepsense.train import build_compiled_deepsense, fit
    from rdeepsense.train import fit_rdeepsense

    config = load_config(None, case.settings)
    members = []
    for member in range(N_MEMBERS):
        def build(ds, cfg, n, seed=member):
            keras.utils.set_random_seed(1000 * seed)  # init and dropout differ, data do not
            return build_compiled_deepsense(ds, cfg, n)

        run = work / case.name.split()[0] / f"plain{member}"
        _timed(f"{case.name}: plain member {member}", lambda: fit(
            case.dataset, config, run, build_model=build, verbose=0,
            extra_info={"ensemble_member": member}))
        members.append(run)
    rdeepsense = {}
    for weight in weights:
        run = work / case.name.split()[0] / f"rdeepsense_w{weight}"
        cfg = load_config(None, [*case.settings, 'train.head="rdeepsense"',
                                 f"train.scoring_weight={weight}"])
        _timed(f"{case.name}: rdeepsense w={weight}",
               lambda: fit_rdeepsense(case.dataset, cfg, run, verbose=0))
        rdeepsense[weight] = run
    return {"plain": members, "rdeepsense": rdeepsense}


def _timed(label: str, work) -> None:
    started = time.perf_counter()
    result = work()
    print(f"  {label}: {result.info.epochs_run} epochs, "
          f"{time.perf_counter() - started:.0f} s", flush=True)


# ---------------------------------------------------------------- predictions
def method_specs(runs: dict, weight: float, temperature: float) -> list[dict]:
    """What each method is, as JSON (the timing subprocess rebuilds the predictors from it)."""
    plain, rdeep = str(runs["plain"][0]), str(runs["rdeepsense"][weight])
    return [
        {"name": "plain softmax", "kind": "one_pass", "runs": [plain]},
        {"name": "temperature scaling", "kind": "temperature", "runs": [plain],
         "temperature": temperature},
        {"name": "MC dropout k=10", "kind": "mc", "runs": [plain], "passes": 10},
        {"name": "MC dropout k=50", "kind": "mc", "runs": [plain], "passes": 50},
        {"name": f"deep ensemble of {N_MEMBERS}", "kind": "ensemble",
         "runs": [str(r) for r in runs["plain"]]},
        {"name": "plain + moment propagation", "kind": "moments", "runs": [plain]},
        {"name": f"RDeepSense (w={weight})", "kind": "one_pass", "runs": [rdeep]},
        {"name": "RDeepSense + moment propagation", "kind": "moments", "runs": [rdeep]},
    ]


def build_predictor(spec: dict):
    from deepsense.run import load_run
    from rdeepsense import predictors
    from rdeepsense.moments import build_moment_model

    models = [load_run(run)[0] for run in spec["runs"]]
    kind = spec["kind"]
    if kind == "one_pass":
        return predictors.make_one_pass(models[0])
    if kind == "temperature":
        return predictors.make_temperature_scaled(models[0], spec["temperature"])
    if kind == "mc":
        return predictors.make_mc_dropout(models[0], spec["passes"], "probabilities")
    if kind == "ensemble":
        return predictors.make_ensemble(models, "probabilities")
    return predictors.make_one_pass(build_moment_model(models[0]))


def fit_plain_temperature(case: Case, run: Path) -> float:
    from deepsense.run import load_run
    from rdeepsense.predictors import make_logits
    from rdeepsense.temperature import fit_temperature

    logits = make_logits(load_run(run)[0])
    rows = case.rows["validation"]
    return fit_temperature(_batched(logits, case.dataset.x[rows]), case.dataset.activity[rows])


def _batched(predict, x: np.ndarray, size: int = 256) -> np.ndarray:
    return np.concatenate([predict(x[i:i + size]) for i in range(0, len(x), size)])


def evaluate_methods(case: Case, specs: list[dict]) -> dict[str, dict]:
    """Test metrics and mean entropies (in-distribution, held-out, corrupted) per method."""
    ds, rows = case.dataset, case.rows
    results = {}
    for spec in specs:
        predict = build_predictor(spec)
        test = _batched(predict, ds.x[rows["test"]])
        result = {k: float(v) for k, v in classification_calibration(
            ds.activity[rows["test"]], test).items()}
        reference = test if case.reference == "test" else _batched(
            predict, ds.x[rows["validation"]])
        result["entropy"] = {"in-distribution": float(entropy(reference).mean())}
        if case.reference == "validation":
            result["entropy"]["held-out user"] = float(entropy(test).mean())
        for shift in SHIFTS:
            corrupted = _batched(predict, case.corrupted[shift].x[rows[shift]])
            result["entropy"][shift] = float(entropy(corrupted).mean())
        results[spec["name"]] = result
        print(f"  {case.name}: {spec['name']}: accuracy {result['accuracy']:.4f}, "
              f"NLL {result['nll']:.4f}, ECE {result['ece']:.4f}", flush=True)
    return results


def sweep_table(case: Case, runs: dict) -> tuple[float, list[list]]:
    """Validation and test metrics per scoring weight; the weight with the lowest val NLL."""
    from deepsense.run import load_run
    from rdeepsense.predictors import make_one_pass

    ds, rows, table, best = case.dataset, case.rows, [], (np.inf, None)
    for weight, run in runs["rdeepsense"].items():
        predict = make_one_pass(load_run(run)[0])
        val = classification_calibration(ds.activity[rows["validation"]],
                                         _batched(predict, ds.x[rows["validation"]]))
        test = classification_calibration(ds.activity[rows["test"]],
                                          _batched(predict, ds.x[rows["test"]]))
        best = min(best, (val["nll"], weight))
        table.append([weight, f"{val['nll']:.4f}", f"{val['ece']:.4f}", f"{test['accuracy']:.4f}",
                      f"{test['nll']:.4f}", f"{test['ece']:.4f}", f"{test['brier']:.4f}"])
    for row in table:
        row.append("**chosen**" if row[0] == best[1] else "")
    return best[1], table


# ---------------------------------------------------------------- timing (subprocess)
def time_methods(spec_path: Path) -> dict[str, float]:
    """Median ms per window (batch 1, one thread) of each method in the spec file.

    A method with ``repeat`` r calls its predictor r times per window (MC dropout passes
    one by one instead of batched).
    """
    single_thread_tensorflow()
    spec = json.loads(spec_path.read_text())
    x = np.load(spec["windows"])
    functions = {m["name"]: build_predictor(m) for m in spec["methods"]}
    repeat = {m["name"]: m.get("repeat", 1) for m in spec["methods"]}
    return median_latency_ms(functions, x, spec["rounds"], warmup=3, repeat=repeat)


def measure_times(case: Case, specs: list[dict], work: Path, rounds: int) -> dict[str, float]:
    windows = work / f"{case.name.split()[0]}_windows.npy"
    np.save(windows, case.dataset.x[case.rows["test"][:10]])
    spec_path = work / f"{case.name.split()[0]}_timing.json"
    one_by_one = [{**m, "name": f"{m['name']}, passes one by one", "passes": 1,
                   "repeat": m["passes"]} for m in specs if m["kind"] == "mc"]
    spec_path.write_text(json.dumps({"methods": specs + one_by_one, "windows": str(windows),
                                     "rounds": rounds}))
    out = subprocess.run([sys.executable, __file__, "--timing", str(spec_path)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------- report
def case_tables(results: dict, times: dict, weight: float) -> tuple[str, str, str]:
    base_ms = times["plain softmax"]
    rows = []
    for name, r in results.items():
        rows.append([f"**{name}**" if name.startswith("RDeepSense (") else name,
                     f"{r['accuracy']:.4f}", f"{r['nll']:.4f}", f"{r['ece']:.4f}",
                     f"{r['brier']:.4f}", f"{times[name]:.2f}", f"{times[name] / base_ms:.1f}x"])
    main = markdown_table(["method", "accuracy", "NLL", "ECE", "Brier", "ms/window",
                           "cost vs plain"], rows)
    main += "\n\nMC dropout ms/window above runs the k passes of a window as one batch; one " \
            "pass at a time (k calls of batch 1) costs " + ", ".join(
                f"{times[name]:.2f} ms ({times[name] / base_ms:.1f}x) for {name.split(',')[0]}"
                for name in times if name.endswith("passes one by one")) + "."
    shifts = list(next(iter(results.values()))["entropy"])
    shift_rows = []
    for name, r in results.items():
        ent = r["entropy"]
        higher = all(ent[s] > ent["in-distribution"] for s in shifts[1:])
        shift_rows.append([name, *(f"{ent[s]:.3f}" for s in shifts), "yes" if higher else "**no**"])
    shift = markdown_table(["method", *(f"entropy: {s}" for s in shifts), "all shifts higher"],
                           shift_rows)
    rd = results[f"RDeepSense (w={weight})"]
    mc, plain = results["MC dropout k=50"], results["plain softmax"]
    cost = times[f"RDeepSense (w={weight})"] / times["MC dropout k=50"]
    parts = {"ECE": rd["ece"] <= mc["ece"], "NLL": rd["nll"] <= mc["nll"], "cost": cost <= 0.1,
             "accuracy": rd["accuracy"] >= plain["accuracy"] - 0.005}
    missed = [name for name, ok in parts.items() if not ok]
    goal = (f"RDeepSense vs MC dropout k=50: ECE {rd['ece']:.4f} vs {mc['ece']:.4f}, NLL "
            f"{rd['nll']:.4f} vs {mc['nll']:.4f}, cost ratio {cost:.3f} (goal <= 0.1); accuracy "
            f"{rd['accuracy']:.4f} vs plain {plain['accuracy']:.4f} (goal >= plain - 0.005): "
            + (f"**missed: {', '.join(missed)}**" if missed else "**met**"))
    return main, shift, goal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12, help="synthetic: maximum epochs")
    parser.add_argument("--bm-epochs", type=int, default=30, help="BasicMotions: maximum epochs")
    parser.add_argument("--users", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--holdout", default="f")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds of 10 windows")
    parser.add_argument("--quick", action="store_true", help="tiny model, 1 epoch: a smoke run")
    parser.add_argument("--out", type=Path, help="keep the runs here (default: a temp dir)")
    parser.add_argument("--timing", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.timing:
        print(json.dumps(time_methods(args.timing)))
        return
    if args.quick:
        args.epochs = args.bm_epochs = 1
        args.users, args.seconds, args.rounds = 3, 12.0, 1
        args.holdout = "c"
    model = TINY_MODEL if args.quick else SMALL_MODEL
    args.common = [*model, f"train.epochs={args.epochs}",
                   "train.early_stopping_patience=4"]
    work = args.out or Path(tempfile.mkdtemp(prefix="bench-rdeepsense-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    sections = []
    synthetic = synthetic_case(args)
    runs = train_runs(synthetic, work, args.weights)
    weight, sweep = sweep_table(synthetic, runs)
    cases = [(synthetic, runs)]
    bm = basicmotions_case(args)
    cases.append((bm, train_runs(bm, work, [weight])))
    for case, case_runs in cases:
        temperature = fit_plain_temperature(case, case_runs["plain"][0])
        specs = method_specs(case_runs, weight, temperature)
        results = evaluate_methods(case, specs)
        times = measure_times(case, specs, work, args.rounds)
        main_table, shift_table, goal = case_tables(results, times, weight)
        n_test, n_val = len(case.rows["test"]), len(case.rows["validation"])
        sections.append(f"### {case.name}\n\n{n_test} test windows, {n_val} validation windows "
                        f"(temperature T = {temperature:.2f} fitted on them).\n\n{main_table}\n\n"
                        f"Shift check (mean predictive entropy, nats; in-distribution = "
                        f"{case.reference} windows):\n\n{shift_table}\n\nGoal: {goal}.")
    sweep_md = markdown_table(["w (NLL weight)", "val NLL", "val ECE", "test accuracy",
                               "test NLL", "test ECE", "test Brier", ""], sweep)
    model_text = "tiny" if args.quick else "DeepSense with 32-filter convs and GRU(64, 64)"
    body = (f"{model_text}; Adam lr 1e-3, beta 0.5/0.9, batch 64, at most {args.epochs} epochs "
            f"(BasicMotions {args.bm_epochs}), early stopping (patience 4) on a 10% validation "
            f"split (20% for BasicMotions). Synthetic: {args.users} users x 3 devices x 6 "
            f"activities x {args.seconds:.0f} s, windows of 20 x 0.25 s every 1.25 s. "
            "BasicMotions: 10 Hz, 19 x 0.5 s windows (one per case), training set augmented "
            "x10.\n\n"
            f"Scoring-weight sweep ({synthetic.name}); the RDeepSense rows use the weight with "
            f"the lowest validation NLL:\n\n{sweep_md}\n\n" + "\n\n".join(sections)
            + f"\n\nTotal benchmark time {time.perf_counter() - started:.0f} s.")
    write_section("Calibrated uncertainty (issue 3)",
                  "PYTHONPATH=. .venv/bin/python bench/bench_rdeepsense.py "
                  + " ".join(sys.argv[1:]), body)


if __name__ == "__main__":
    main()
