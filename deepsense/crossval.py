"""Cross-subject evaluation: train and evaluate one run per fold of held-out users.

```
deepsense crossval --data data/hapt --out runs/hapt-cv --folds 5      # 5 groups of users
deepsense crossval --data data/hhar --out runs/hhar-cv --folds loso   # one fold per user
```

The output directory holds::

    folds.json          the plan: fold -> held-out users (a re-run must find the same plan)
    fold-00/ ...        one run directory per fold (train + evaluate: metrics.json)
    crossval.csv        one row per fold, then the mean and the standard deviation
    crossval.json       the same, plus the settings
    crossval.png        per-fold accuracy and macro-F1 (MAE and RMSE for regression)

A fold whose run directory has a metrics.json is not trained again; an interrupted fold
resumes from its last epoch (Keras BackupAndRestore in `deepsense.train.fit`).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from deepsense.config import RunConfig, config_to_dict
from deepsense.data.prepared import PreparedDataset
from deepsense.errors import ConfigError

#: Metrics tabulated per task kind.
CLASSIFICATION_METRICS = ("accuracy", "macro_f1")
REGRESSION_METRICS = ("mae", "rmse")


def make_folds(user_names: list[str], folds: int | str, *, seed: int = 0) -> list[list[str]]:
    """Groups of held-out users: "loso" (one user per fold) or `folds` groups.

    Users are shuffled with `seed`, then cut into `folds` groups whose sizes differ by at
    most one (30 users, 5 folds: 6 users each). Each group is sorted by its order in
    `user_names`.
    """
    if len(user_names) < 2:
        raise ConfigError(f"cross-subject folds need a dataset of 2 or more users. Received: "
                          f"users {user_names}")
    if folds == "loso":
        return [[name] for name in user_names]
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= len(user_names):
        raise ConfigError(f"folds expected 'loso' or an integer in [2, {len(user_names)}] (the "
                          f"dataset's users). Received: folds={folds!r}")
    order = np.random.default_rng(seed).permutation(len(user_names))
    return [sorted((user_names[i] for i in group), key=user_names.index)
            for group in np.array_split(order, folds)]


def fold_split(users: list[str]) -> str:
    """The split spec that holds out `users` ("users:a,b")."""
    return "users:" + ",".join(users)


def run_crossval(ds: PreparedDataset, config: RunConfig, out_dir: str | Path, *,
                 data_path: str | Path, folds: int | str = 5,
                 fit: Callable | None = None, evaluate: Callable | None = None,
                 verbose: int | None = None,
                 on_fold: Callable[[dict], None] | None = None) -> dict:
    """Train and evaluate one run per fold; write the table and the plot.

    Args:
        ds: the prepared dataset (also at `data_path`, which `evaluate` reads).
        config: settings of every fold's run; its `train.split` is replaced per fold and
            `train.seed` also shuffles the users into folds.
        out_dir: gets folds.json, fold-NN/, crossval.csv, crossval.json, crossval.png.
        data_path: the prepared dataset's directory.
        folds: "loso" or the number of user groups.
        fit: `deepsense.train.fit` (default) or a function with its signature (e.g.
            `rdeepsense.train.fit_rdeepsense`).
        evaluate: `deepsense.evaluate.evaluate_run` (default) or the same signature.
        verbose: Keras verbosity for `fit`.
        on_fold: called with each fold's row (also for folds found finished).

    Returns:
        {"folds": [row per fold], "mean": {...}, "std": {...}, "metrics": [...], ...}.

    Raises:
        ConfigError: bad `folds`, or `out_dir` holds another plan of folds.
    """
    if fit is None:
        from deepsense.train import fit
    if evaluate is None:
        from deepsense.evaluate import evaluate_run as evaluate
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan = {"folds": make_folds(list(ds.user_names), folds, seed=config.train.seed),
            "kind": folds, "seed": config.train.seed, "data": str(Path(data_path).resolve())}
    _check_plan(out / "folds.json", plan)
    metrics = REGRESSION_METRICS if config.train.task == "regression" else CLASSIFICATION_METRICS
    rows = []
    for index, users in enumerate(plan["folds"]):
        run = out / f"fold-{index:02d}"
        split = fold_split(users)
        if not (run / "metrics.json").exists():
            fold_config = replace(config, train=replace(config.train, split=split))
            fit(ds, fold_config, run, data_path=data_path, verbose=verbose)
            evaluate(run, data_path)
        result = json.loads((run / "metrics.json").read_text())
        info = json.loads((run / "run.json").read_text())
        row = {"fold": index, "users": " ".join(users), "n_test_windows": result["n_windows"],
               **{name: result[name] for name in metrics},
               "epochs": info["epochs_run"], "train_s": info["train_seconds"]}
        rows.append(row)
        if on_fold is not None:
            on_fold(row)
    summary = summarize(rows, metrics)
    summary.update({"kind": folds, "task": config.train.task, "data": plan["data"],
                    "config": config_to_dict(config)})
    write_table(rows, summary, out / "crossval.csv")
    (out / "crossval.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_folds(rows, summary, out / "crossval.png")
    return summary


def _check_plan(path: Path, plan: dict) -> None:
    if path.exists():
        found = json.loads(path.read_text())
        if found != plan:
            raise ConfigError(f"{path} holds another plan of folds ({found['kind']} folds, seed "
                              f"{found['seed']}, data {found['data']}); use another --out or "
                              "the same settings to resume")
        return
    path.write_text(json.dumps(plan, indent=2) + "\n")


def summarize(rows: list[dict], metrics: tuple[str, ...]) -> dict:
    """Mean, standard deviation (ddof 1; 0 for one fold), min and max of each metric."""
    summary: dict = {"folds": rows, "metrics": list(metrics), "mean": {}, "std": {},
                     "min": {}, "max": {}}
    for name in metrics:
        values = np.array([row[name] for row in rows], dtype=np.float64)
        summary["mean"][name] = round(float(values.mean()), 4)
        summary["std"][name] = round(float(values.std(ddof=1)) if len(values) > 1 else 0.0, 4)
        summary["min"][name] = round(float(values.min()), 4)
        summary["max"][name] = round(float(values.max()), 4)
    return summary


def write_table(rows: list[dict], summary: dict, path: str | Path) -> Path:
    """crossval.csv: one row per fold, then "mean" and "std" rows."""
    columns = list(rows[0])
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        for stat in ("mean", "std"):
            writer.writerow({"fold": stat, **summary[stat]})
    return Path(path)


def format_table(summary: dict) -> str:
    """The per-fold table as aligned text, with mean ± std and the range."""
    metrics = summary["metrics"]
    lines = [f"{'fold':>4}  {'n_test':>6}  " + "  ".join(f"{m:>8}" for m in metrics)
             + f"  {'epochs':>6}  {'train_s':>8}  held-out users"]
    for row in summary["folds"]:
        lines.append(f"{row['fold']:>4}  {row['n_test_windows']:>6}  "
                     + "  ".join(f"{row[m]:>8.4f}" for m in metrics)
                     + f"  {row['epochs']:>6}  {row['train_s']:>8.0f}  {row['users']}")
    lines.append("mean ± std: " + ", ".join(
        f"{m} {summary['mean'][m]:.4f} ± {summary['std'][m]:.4f} "
        f"(min {summary['min'][m]:.4f}, max {summary['max'][m]:.4f})" for m in metrics))
    return "\n".join(lines)


def plot_folds(rows: list[dict], summary: dict, path: str | Path) -> Path:
    """Bars per fold for each metric, with the mean as a dashed line; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = summary["metrics"]
    n = len(rows)
    width = 0.8 / len(metrics)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.5 * n * len(metrics) + 2), 4))
    positions = np.arange(n)
    for k, name in enumerate(metrics):
        values = [row[name] for row in rows]
        bars = ax.bar(positions + (k - (len(metrics) - 1) / 2) * width, values, width,
                      label=f"{name} (mean {summary['mean'][name]:.3f} ± "
                            f"{summary['std'][name]:.3f})")
        ax.axhline(summary["mean"][name], color=bars.patches[0].get_facecolor(),
                   linestyle="--", linewidth=1)
    ax.set_xticks(positions, [f"{row['fold']}\n{row['users']}" if n <= 12 else str(row["fold"])
                              for row in rows], fontsize=8)
    ax.set_xlabel("fold (held-out users)" if n <= 12 else "fold")
    if all(name in CLASSIFICATION_METRICS for name in metrics):
        low = min(min(row[m] for row in rows) for m in metrics)
        ax.set_ylim(max(0.0, math.floor(low * 10) / 10 - 0.1), 1.0)
    ax.set_title(f"cross-subject, {summary['kind']} folds, task {summary['task']}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
