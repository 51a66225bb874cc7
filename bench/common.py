"""What the benchmark scripts share: the machine description, BENCHMARKS.md sections, peak
memory (MiB) and the latency harnesses (milliseconds per window, batch 1 or batched)."""

from __future__ import annotations

import datetime
import os
import platform
import re
import resource
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Callable, Mapping

import numpy as np

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def machine() -> str:
    """One line: CPU model, cores, memory, Python and TensorFlow versions if loaded."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    parts = [cpu, f"{os.cpu_count()} cores", f"{mem_gib:.0f} GiB", f"Python {platform.python_version()}"]
    if "tensorflow" in sys.modules:
        parts.append(f"TensorFlow {sys.modules['tensorflow'].__version__}")
    if "keras" in sys.modules:
        parts.append(f"Keras {sys.modules['keras'].__version__}")
    return ", ".join(parts)


def peak_rss_mib(children: bool = False) -> float:
    """Peak resident memory in MiB of this process, or of its largest finished child.

    For this process it is VmHWM from /proc (unlike ru_maxrss, it does not count what the
    parent that forked it held); ru_maxrss where /proc is missing, and for children.
    """
    if not children:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024


def single_thread_tensorflow() -> ModuleType:
    """TensorFlow with one intra-op and one inter-op thread (batch-1 latency on one core)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return tf


Function = Callable[[np.ndarray], object]


def _interleaved_medians(functions: Mapping[str, Function], rounds: int,
                         sample: Callable[[str, Function], list[float]]) -> dict[str, float]:
    """Median of each function's samples (ms per window) over `rounds` rounds that alternate
    between the functions, so that all of them see the same machine noise."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            times[name].extend(sample(name, function))
    return {name: statistics.median(values) for name, values in times.items()}


def median_latency_ms(functions: Mapping[str, Function], x: np.ndarray,
                      rounds: int, *, warmup: int = 5,
                      repeat: Mapping[str, int] | None = None) -> dict[str, float]:
    """Median milliseconds per window of each function, one (1, T, F) window per call.

    Every function first runs on `warmup` windows (tracing, caches); then `rounds` rounds
    alternate between the functions, so that all of them see the same machine noise. A
    function with ``repeat[name] = r`` is called r times per window (e.g. MC dropout passes
    one by one).

    Args:
        functions: name -> callable on a (1, T, F) float32 window.
        x: (n, T, F) windows.
    """
    repeat = repeat or {}
    for function in functions.values():
        for window in x[:warmup]:
            function(window[None])

    def per_window(name: str, function: Function) -> list[float]:
        samples = []
        for window in x:
            started = time.perf_counter()
            for _ in range(repeat.get(name, 1)):
                function(window[None])
            samples.append(1000 * (time.perf_counter() - started))
        return samples

    return _interleaved_medians(functions, rounds, per_window)


def batched_ms_per_window(functions: Mapping[str, Function], x: np.ndarray, rounds: int, *,
                          batch: int = 256) -> dict[str, float]:
    """Median milliseconds per window of each function, `batch` windows per call.

    Every function first predicts all of `x` once (tracing); then `rounds` rounds alternate
    between the functions, each predicting all of `x` in calls of `batch` windows.

    Args:
        functions: name -> callable on a (b, T, F) float32 batch.
        x: (n, T, F) windows.
    """
    def predict_all(function: Function) -> None:
        for start in range(0, len(x), batch):
            function(x[start:start + batch])

    for function in functions.values():
        predict_all(function)

    def all_windows(_: str, function: Function) -> list[float]:
        started = time.perf_counter()
        predict_all(function)
        return [1000 * (time.perf_counter() - started) / len(x)]

    return _interleaved_medians(functions, rounds, all_windows)


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, command: str, body: str) -> None:
    """Replace (or append) the section `name` of BENCHMARKS.md and print it."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = (f"<!-- {name} -->\n## {name}\n\n"
               f"Command: `{command}`  \nMachine: {machine()}  \nDate: {stamp}\n\n"
               f"{body.strip()}\n<!-- /{name} -->\n")
    print(section)
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else (
        "# Benchmarks\n\nEach section is written by the script in its command; rerun it to refresh.\n\n")
    pattern = re.compile(rf"<!-- {re.escape(name)} -->.*?<!-- /{re.escape(name)} -->\n", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text + "\n" + section
    BENCHMARKS_MD.write_text(text)
