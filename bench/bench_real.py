"""Real data, side by side: DeepSense vs MiniRocket vs a random forest on the same windows.

    python bench/bench_real.py --hapt data/hapt-raw [--cases hapt-uci,basicmotions]
        [--methods deepsense,minirocket,forest] [--seeds 0,1,2] [--fold-seeds 0]
        [--work /tmp/bench-real]
        [--set train.epochs=60] [--skip-missing] [--no-write]

Needs aeon (MiniRocket) and scikit-learn, benchmark-only dependencies that are not in
setup.cfg: `pip install -r bench/requirements.txt`. aeon 1.6.0 pins numpy < 2.4 (through
numba) and pandas < 3.1, so install it into a venv of its own rather than the project's
(see bench/requirements.txt). HAPT comes from `deepsense data fetch-hapt --out DIR` or
the UCI download (datasets/hapt/README.md).

Cases (`--cases`, comma-separated; default all):
  hapt-uci      HAPT, 6 activities, the 9 UCI HAR test subjects held out
  hapt-5fold    HAPT, 6 activities, 5 folds of 6 users (mean and spread over the folds)
  hapt-userid   HAPT, UserID (30 users), the last 30% of every experiment held out
  basicmotions  BasicMotions, its own train/test files
  synthetic     our synthetic generator, activity, user a held out
  synthetic-userid  the same recordings, UserID, the last 30% of each recording held out

Every method sees the same windows and the same train/test rows: the prepared dataset
(`deepsense.data.prepared`) and `deepsense.data.splits.split_indices`. DeepSense trains on
the FFT features with `deepsense.train.fit` (which holds out 10% of the training windows
for early stopping); MiniRocket and the forest train on every training window's raw
resampled signals, which are the inverse FFT of those features: per interval and axis the
`n_points` interpolated samples the FFT was taken of, so a window is (channels = 6,
timepoints = n_intervals * n_points). Each (case, method, seed, fold) runs in a fresh
process (peak RSS is that process's, data loading and imports included) and its result is
kept in `<work>/results/`, so a re-run only runs what is missing (`--skip-missing`
tabulates what is there and lists the rest). Results are keyed by case, method, seed,
fold and the DeepSense `--set` overrides, not by the code: after changing the code, use a
fresh `--work` (or delete `<work>/results/*-deepsense-*`). The table goes into BENCHMARKS.md, section
"Real data: DeepSense vs MiniRocket (issue 11)", with the command, machine and date.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, peak_rss_mib, write_section  # noqa: E402

from deepsense.data.features import FeatureConfig  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("deepsense", "minirocket", "forest")
UCI_TEST_USERS = "2,4,9,10,12,13,18,20,24"
#: 5 s windows (20 x 0.25 s, DeepSense's default) every 2.5 s (UCI HAR's 50% overlap).
HAPT_FEATURES = FeatureConfig(stride_s=2.5)
BASICMOTIONS_FEATURES = FeatureConfig(interval_s=0.5, n_intervals=19)   # a case lasts 9.9 s
SYNTHETIC_FEATURES = FeatureConfig(stride_s=1.25)
#: Published six-activity figures on the UCI HAR split (2.56 s windows), for reference.
PUBLISHED = ("Published on UCI HAR (same 9 test subjects, 2.56 s windows, 561 hand-made "
             "features or raw signals): SVM on 561 features 0.96 (Anguita et al., ESANN "
             "2013); CNN/LSTM papers 0.92-0.97.")


@dataclass(frozen=True)
class Case:
    """One benchmark: a dataset (by name, prepared once) and how its test side is chosen."""

    dataset: str
    task: str
    split: str                         # a split spec, or "folds:<k>" for user folds
    features: FeatureConfig
    description: str
    overrides: tuple[str, ...] = field(default_factory=tuple)


CASES = {
    "hapt-uci": Case("hapt-activities", "activity", f"users:{UCI_TEST_USERS}", HAPT_FEATURES,
                     "HAPT 6 activities, UCI test subjects held out"),
    "hapt-5fold": Case("hapt-activities", "activity", "folds:5", HAPT_FEATURES,
                       "HAPT 6 activities, 5 folds of 6 users"),
    "hapt-userid": Case("hapt-user", "user", "time:0.3", HAPT_FEATURES,
                        "HAPT UserID (30 users), last 30% of each experiment held out"),
    "basicmotions": Case("basicmotions", "activity", "source", BASICMOTIONS_FEATURES,
                         "BasicMotions, UEA train/test"),
    "synthetic": Case("synthetic", "activity", "loso:a", SYNTHETIC_FEATURES,
                      "synthetic activity, user a held out"),
    "synthetic-userid": Case("synthetic", "user", "time:0.3", SYNTHETIC_FEATURES,
                             "synthetic UserID (9 users), last 30% of each recording held out"),
}


# ----------------------------------------------------------------------------- data
def prepare_dataset(name: str, features: FeatureConfig, hapt_dir: Path | None, out: Path) -> Path:
    """Prepare (once) and save the named dataset; returns its directory."""
    if (out / "dataset.json").exists():
        return out
    from deepsense.data.augment import auto_augment_copies
    from deepsense.data.prepared import prepare_recordings, save_prepared

    if name.startswith("hapt-"):
        from deepsense.data.hapt import class_names, read_hapt

        if hapt_dir is None:
            raise SystemExit("the HAPT cases need --hapt DIR (deepsense data fetch-hapt --out DIR)")
        labels = "activities" if name == "hapt-activities" else "user"
        recordings, _ = read_hapt(hapt_dir, labels=labels)
        names = class_names(labels)
    elif name == "basicmotions":
        from deepsense.data.ts_format import read_ts

        bm = ROOT / "datasets" / "basicmotions"
        recordings = (read_ts(bm / "BasicMotions_TRAIN.ts", sample_rate_hz=10, split="train")[0]
                      + read_ts(bm / "BasicMotions_TEST.ts", sample_rate_hz=10, split="test")[0])
        names = None
    else:
        from deepsense.data.synthetic import ACTIVITIES, SyntheticSpec, make_recordings

        recordings = make_recordings(SyntheticSpec(n_users=9, seconds_per_activity=60.0, seed=0))
        names = list(ACTIVITIES)
    copies = auto_augment_copies(recordings, features)  # as `deepsense prepare` does
    return save_prepared(prepare_recordings(recordings, features, activity_names=names,
                                            augment_copies=copies), out)


def raw_signals(x: np.ndarray, features: FeatureConfig) -> np.ndarray:
    """FFT features (n, T, F) -> the resampled signals they were computed from.

    Per interval, sensor and axis the features are the FFT (re, im per bin) of `n_points`
    linearly interpolated samples; the inverse FFT gives those samples back (invalid
    intervals stay zeros).

    Returns:
        (n, n_sensors * n_axes, T * n_points) float32: channels acc x, y, z, gyro x, y, z.
    """
    n, T = x.shape[:2]
    S, P, A = len(features.sensors), features.n_points, features.n_axes
    pairs = np.asarray(x, dtype=np.float64).reshape(n, T, S, P, A, 2)
    points = np.fft.ifft(pairs[..., 0] + 1j * pairs[..., 1], axis=3).real   # (n, T, S, P, A)
    return points.transpose(0, 2, 4, 1, 3).reshape(n, S * A, T * P).astype(np.float32)


def summary_features(raw: np.ndarray) -> np.ndarray:
    """(n, c, t) signals -> (n, (c + 2) * 8) per-window statistics.

    Channels plus the acc and gyro magnitudes; per series: mean, std, min, max, 10th, 50th
    and 90th percentile, mean absolute first difference.
    """
    magnitudes = [np.linalg.norm(raw[:, k:k + 3], axis=1) for k in range(0, raw.shape[1], 3)]
    series = np.concatenate([raw, np.stack(magnitudes, axis=1)], axis=1)
    stats = [series.mean(-1), series.std(-1), series.min(-1), series.max(-1),
             *np.percentile(series, [10, 50, 90], axis=-1),
             np.abs(np.diff(series, axis=-1)).mean(-1)]
    return np.stack(stats, axis=-1).reshape(len(raw), -1)


# ----------------------------------------------------------------------------- one run
def run_one(job: dict) -> dict:
    """Train and test one method on one split, in this (fresh) process."""
    from deepsense.data.prepared import load_prepared
    from deepsense.data.splits import labelled_rows, split_indices
    from edge.metrics import classification_metrics

    ds = load_prepared(job["data"])
    task, split, seed = job["task"], job["split"], job["seed"]
    train, test = split_indices(ds, split, seed=seed, use_augmented=False)
    train, test = labelled_rows(ds, train, task), labelled_rows(ds, test, task)
    labels = ds.labels(task)
    class_names = ds.class_names(task)
    if job["method"] == "deepsense":
        probs, train_s, n_train, extra = _run_deepsense(ds, job, test)
    else:
        raw_train = raw_signals(np.asarray(ds.x[train]), ds.features)
        raw_test = raw_signals(np.asarray(ds.x[test]), ds.features)
        model = _make_peer(job["method"], seed, job["jobs"])
        inputs = summary_features if job["method"] == "forest" else (lambda raw: raw)
        started = time.perf_counter()
        model.fit(inputs(raw_train), labels[train])
        train_s = time.perf_counter() - started
        started = time.perf_counter()
        predicted = model.predict_proba(inputs(raw_test))
        probs = np.zeros((len(test), len(class_names)))
        probs[:, model.classes_.astype(int)] = predicted
        n_train, extra = len(train), {"infer_s": time.perf_counter() - started}
    metrics = classification_metrics(labels[test], probs, class_names)
    return {**job, "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
            "n_train": int(n_train), "n_test": int(len(test)), "train_s": round(train_s, 2),
            "infer_ms_per_window": round(1000 * extra.pop("infer_s") / max(len(test), 1), 3),
            "peak_rss_mib": round(peak_rss_mib(), 1), **extra}


def _run_deepsense(ds, job: dict, test: np.ndarray) -> tuple[np.ndarray, float, int, dict]:
    """Train (or, when an earlier run of this job finished training, reload) and predict.

    A reloaded run keeps the training time it measured (run.json); its peak RSS is that
    of the reloading process, so the row says ``reused``.
    """
    from deepsense.config import load_config
    from deepsense.run import MODEL_FILE, RUN_FILE, load_run
    from deepsense.train import fit

    run_dir = Path(job["run_dir"])
    reused = (run_dir / MODEL_FILE).exists() and (run_dir / RUN_FILE).exists()
    if reused:
        model, info = load_run(run_dir)
    else:
        config = load_config(None, [f'train.task="{job["task"]}"', f'train.split="{job["split"]}"',
                                    f'train.seed={job["seed"]}', *job["overrides"]])
        result = fit(ds, config, run_dir, data_path=job["data"], verbose=2)
        model, info = result.model, result.info
    x_test = np.asarray(ds.x[test])
    model.predict(x_test[:256], batch_size=256, verbose=0)   # trace outside the timing
    started = time.perf_counter()
    probs = model.predict(x_test, batch_size=256, verbose=0)
    infer_s = time.perf_counter() - started
    return probs, info.train_seconds, info.n_train_windows, {
        "infer_s": infer_s, "epochs": info.epochs_run, "reused": reused}


def _make_peer(method: str, seed: int, jobs: int):
    if method == "minirocket":
        from aeon.classification.convolution_based import MiniRocketClassifier

        warm = MiniRocketClassifier(n_kernels=84, random_state=0, n_jobs=jobs)  # numba JIT
        warm.fit(np.random.default_rng(0).normal(size=(4, 6, 40)).astype(np.float32),
                 np.array([0, 1, 0, 1]))
        return MiniRocketClassifier(random_state=seed, n_jobs=jobs)
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=300, random_state=seed, n_jobs=jobs)


# ----------------------------------------------------------------------------- the table
def plan_jobs(cases: list[str], methods: list[str], seeds: list[int], work: Path,
              hapt_dir: Path | None, overrides: list[str], jobs: int,
              fold_seeds: list[int] | None = None) -> list[dict]:
    """Every (case, method, seed, fold) to run, with its data prepared; cases with folds
    run `fold_seeds` (default `seeds`): k folds already cost k trainings per seed."""
    from deepsense.crossval import fold_split, make_folds
    from deepsense.data.prepared import load_prepared

    planned = []
    for name in cases:
        case = CASES[name]
        data = prepare_dataset(case.dataset, case.features, hapt_dir, work / "data" / case.dataset)
        splits = [case.split]
        if case.split.startswith("folds:"):
            users = load_prepared(data).user_names
            splits = [fold_split(f) for f in make_folds(users, int(case.split[6:]), seed=0)]
        for method in methods:
            for seed in (fold_seeds or seeds) if len(splits) > 1 else seeds:
                for fold, split in enumerate(splits):
                    tag = f"{name}-{method}-s{seed}-f{fold}"
                    planned.append({"case": name, "method": method, "seed": seed, "fold": fold,
                                    "split": split, "task": case.task, "data": str(data),
                                    "run_dir": str(work / "runs" / tag), "tag": tag,
                                    "overrides": ([*case.overrides, *overrides]
                                                  if method == "deepsense" else []),
                                    "jobs": jobs})
    return planned


def run_jobs(planned: list[dict], work: Path, *, skip_missing: bool = False
             ) -> tuple[list[dict], list[str]]:
    """Run what has no result yet, one fresh process per job (none with `skip_missing`).

    Returns:
        every result, and the tags of the jobs left out.
    """
    results_dir = work / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    results, missing = [], []
    context = multiprocessing.get_context("spawn")
    for job in planned:
        path = results_dir / f"{job['tag']}.json"
        if path.exists() and json.loads(path.read_text()).get("overrides") == job["overrides"]:
            results.append(json.loads(path.read_text()))
            continue
        if skip_missing:
            missing.append(job["tag"])
            continue
        print(f"--- {job['tag']} ({job['split']})", flush=True)
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            result = pool.submit(run_one, job).result()
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"    accuracy {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f}, "
              f"train {result['train_s']:.0f} s, {result['infer_ms_per_window']:.2f} ms/window, "
              f"peak RSS {result['peak_rss_mib']:.0f} MiB", flush=True)
        results.append(result)
    return results, missing


def _mean_std(values: list[float], digits: int) -> str:
    mean = float(np.mean(values))
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {float(np.std(values, ddof=1)):.{digits}f}"


def table_rows(results: list[dict]) -> list[list[object]]:
    """One row per (case, method): mean ± std over seeds and folds."""
    rows = []
    keys = list(dict.fromkeys((r["case"], r["method"]) for r in results))
    for case, method in keys:
        runs = [r for r in results if (r["case"], r["method"]) == (case, method)]
        n_folds = len({r["fold"] for r in runs})
        rows.append([case, method, len({r["seed"] for r in runs}), n_folds,
                     f"{np.mean([r['n_train'] for r in runs]):.0f} / "
                     f"{np.mean([r['n_test'] for r in runs]):.0f}",
                     _mean_std([r["accuracy"] for r in runs], 4),
                     _mean_std([r["macro_f1"] for r in runs], 4),
                     f"{np.mean([r['train_s'] for r in runs]):.1f}",
                     f"{np.mean([r['infer_ms_per_window'] for r in runs]):.3f}",
                     f"{max(r['peak_rss_mib'] for r in runs):.0f}"
                     + (" (reloaded)" if any(r.get("reused") for r in runs) else "")])
    return rows


HEADER = ["case", "method", "seeds", "folds", "train / test windows", "accuracy", "macro-F1",
          "train s (per run)", "inference ms/window", "peak RSS MiB"]


def versions() -> str:
    """Installed versions of the packages the runs use (without importing them)."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("tensorflow", "tensorflow-cpu", "keras", "aeon", "scikit-learn", "numpy"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            continue
    return ", ".join(found)


def notes(cases: list[str], overrides: list[str]) -> str:
    lines = ["Cases: " + "; ".join(f"`{c}` {CASES[c].description}" for c in cases) + ".",
             "",
             "- Same windows and train/test rows for every method (prepared dataset + split "
             "spec; 5 folds from `deepsense.crossval.make_folds(users, 5, seed=0)`). HAPT: 5 s "
             "windows (20 x 0.25 s) every 2.5 s; BasicMotions: 19 x 0.5 s, one per case; "
             "synthetic: 9 users x 3 devices x 6 activities x 60 s, 20 x 0.25 s every 1.25 s.",
             "- **DeepSense**: `deepsense.train.fit` with the library defaults of this commit"
             + (f" plus `{' '.join(overrides)}`" if overrides else "")
             + " on the FFT features; 10% of the training windows held out for early "
             "stopping. Inference: `model.predict`, batch 256, over the test windows. "
             "\"(reloaded)\": a DeepSense run whose training had finished in an earlier, "
             "interrupted benchmark run was reloaded; its train time is the one it measured, its "
             "peak RSS that of the reloading process.",
             "- **MiniRocket**: aeon `MiniRocketClassifier` (10,000 kernels, ridge "
             "classifier) on the raw resampled signals of the same windows: the inverse FFT "
             "of each interval's features, i.e. the `n_points` = 10 interpolated samples per "
             "interval and axis (HAPT: 6 channels x 200 timepoints, 40 Hz). Its numba code is "
             "compiled before the timing starts. Inference: `predict_proba` on all test windows.",
             "- **forest**: scikit-learn random forest (300 trees) on per-window statistics of "
             "the same raw signals (6 channels + acc and gyro magnitudes: mean, std, min, max, "
             "10/50/90th percentile, mean |diff|; 64 features); their computation is inside the "
             "train and inference times.",
             "- train s: fit time per run (mean over seeds and folds), data loading excluded. "
             "Inference ms/window: batch prediction time / test windows. Peak RSS: the largest "
             "over the runs, each a fresh process (imports and the dataset included).",
             "- Versions: " + versions() + ".",
             "- " + PUBLISHED]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hapt", type=Path, help="UCI HAPT folder (activity_labels.txt, RawData/)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"subset of {','.join(CASES)}")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"subset of {','.join(METHODS)}")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--fold-seeds", help="seeds of the cases with folds (default: --seeds)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-real"),
                        help="prepared data, runs and results (kept: a re-run resumes)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="DeepSense setting override, e.g. --set train.epochs=60")
    parser.add_argument("--jobs", type=int, default=1, help="threads for MiniRocket and the forest")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    parser.add_argument("--note", help="a sentence added under the table (e.g. what changed)")
    parser.add_argument("--skip-missing", action="store_true",
                        help="run nothing: tabulate the results already in --work")
    args = parser.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    methods = [m for m in args.methods.split(",") if m]
    unknown = [c for c in cases if c not in CASES] + [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown case or method {unknown}; cases {list(CASES)}, methods {list(METHODS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.perf_counter()
    fold_seeds = [int(s) for s in args.fold_seeds.split(",")] if args.fold_seeds else None
    planned = plan_jobs(cases, methods, seeds, args.work, args.hapt, args.set, args.jobs,
                        fold_seeds)
    results, missing = run_jobs(planned, args.work, skip_missing=args.skip_missing)
    body = markdown_table(HEADER, table_rows(results)) + "\n\n" + notes(cases, args.set)
    if missing:
        body += f"\n\nNot run (no result in the work folder): {', '.join(missing)}."
    if args.note:
        body += f"\n\n{args.note}"
    if not args.skip_missing:
        body += f"\n\nTotal wall time of this invocation: {time.perf_counter() - started:.0f} s."
    if args.no_write:
        print(body)
        return
    given = list(sys.argv[1:] if argv is None else argv)
    if args.note:                                    # the note is printed under the table
        at = given.index("--note") if "--note" in given else None
        given = given[:at] + given[at + 2:] if at is not None else [
            a for a in given if not a.startswith("--note=")]
    write_section("Real data: DeepSense vs MiniRocket (issue 11)",
                  "python bench/bench_real.py " + " ".join(given), body)


if __name__ == "__main__":
    main()
