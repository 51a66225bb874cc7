"""Training throughput of the HHAR-size DeepSense on this machine (windows/s, epoch time).

    .venv/bin/python bench/bench_train_throughput.py [--steps 60] [--threads 0]

Times `--steps` training steps of batch 64 (after 5 warm-up steps) for the full model
(released-code defaults, 516,726 parameters) and the paper-size variant, and projects one
epoch of the augmented HHAR training split of the released code (119,080 windows).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from common import markdown_table, write_section  # noqa: E402

HHAR_TRAIN_WINDOWS = 119_080  # released code, split 'a', augmented x10


def _throughput(model_config, steps: int, batch: int = 64) -> tuple[float, int]:
    import tensorflow as tf

    from deepsense.config import RunConfig
    from deepsense.data.features import FeatureConfig
    from deepsense.model import build_deepsense, count_parameters
    from deepsense.train import compile_model, make_tf_dataset

    rng = np.random.default_rng(0)
    n = batch * (steps + 5)
    x = rng.normal(size=(n, 20, 120)).astype("float32")
    x[:, 15:][rng.random(n) < 0.3] = 0.0  # some padded intervals, as in real windows
    y = rng.integers(0, 6, n).astype("int32")
    model = build_deepsense(FeatureConfig(), 6, "activity", model_config)
    compile_model(model, RunConfig(model=model_config))
    data = make_tf_dataset(x, y, batch, shuffle=False)
    model.fit(data.take(5), verbose=0)  # trace and warm up
    timed = data.skip(5).take(steps)
    started = time.perf_counter()
    model.fit(timed, verbose=0)
    seconds = time.perf_counter() - started
    del tf
    return steps * batch / seconds, count_parameters(model)["trainable"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=0, help="TF intra-op threads (0 = all)")
    args = parser.parse_args()
    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from deepsense.config import ModelConfig

    rows = []
    for name, config in (("released code (default)", ModelConfig()),
                         ("paper size", ModelConfig(merge_kernel_sizes=((2, 8), (1, 6), (1, 4))))):
        per_s, params = _throughput(config, args.steps)
        epoch_min = HHAR_TRAIN_WINDOWS / per_s / 60
        rows.append([name, f"{params:,}", f"{per_s:.0f}", f"{1000 * 64 / per_s:.0f}",
                     f"{epoch_min:.1f}"])
    body = (markdown_table(["model", "parameters", "train windows/s", "ms per batch of 64",
                            "HHAR epoch (119,080 windows), min"], rows)
            + f"\n\nBatch 64, {args.steps} timed steps after 5 warm-up steps, "
            f"{'all cores' if not args.threads else f'{args.threads} thread(s)'}, "
            "windows of 20 x 120 with ~30% of windows padded after interval 15.")
    write_section("Training throughput (issue 2)",
                  "python bench/bench_train_throughput.py " + " ".join(sys.argv[1:]), body)


if __name__ == "__main__":
    main()
