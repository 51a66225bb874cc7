"""Reading recordings by source: one table and one `read_recordings`, used by `prepare`,
offline `predict` and `replay`.

A source turns a path into `Recording`s (per device and label: timestamps (n,) in seconds
and readings (n, 3) per sensor, acc in m/s^2, gyro in rad/s), the readers' reports of
skipped rows, and, where the source fixes it, the class order (HHAR: `HHAR_LABELS`).

```python
data = read_recordings("hhar", "Activity recognition exp")   # on_error: the reader's default
data.recordings, data.reports, data.class_names
read_recordings("auto", "recording.csv")                      # csv, inferred from the path
read_recordings("ts", "BasicMotions_TRAIN.ts", ReadOptions(sample_rate_hz=10.0))
read_recordings("synthetic", "synthetic:b", ReadOptions(synthetic=SyntheticSpec(n_users=1)))
```

To add a source, write its reader (path, options) -> SourceData below and add one entry to
`SOURCES`; the command-line choices follow the table.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from deepsense.data.recording import ReadReport, Recording
from deepsense.data.synthetic import ACTIVITIES, SyntheticSpec, make_recordings
from deepsense.errors import ConfigError, require

#: The default everywhere: infer the source from the path (see `infer_source`).
AUTO = "auto"


@dataclass(frozen=True)
class ReadOptions:
    """How to read a path; a source uses the options that concern it.

    Attributes:
        on_error: bad rows: "raise" or "skip"; None: the reader's default (skip for HHAR,
            raise for csv and ts).
        sample_rate_hz: the sampling rate of a .ts file (it carries no clock).
        test_path: ts only: the source's own test file, read as split "test".
        synthetic: what "synthetic" generates; a path ``synthetic:USER`` keeps that user.
        labels: hapt only: "activities" (the 6, transitions dropped), "all" (12 labels) or
            "user" (whole experiments labelled by user, for UserID).
    """

    on_error: str | None = None
    sample_rate_hz: float | None = None
    test_path: str | Path | None = None
    synthetic: SyntheticSpec = field(default_factory=SyntheticSpec)
    labels: str = "activities"

    def reader_kwargs(self) -> dict:
        return {} if self.on_error is None else {"on_error": self.on_error}


@dataclass(frozen=True)
class SourceData:
    """What a source read.

    Attributes:
        recordings: the recordings, in the reader's order.
        reports: one `ReadReport` per file read (rows read, skipped by reason).
        class_names: the source's fixed class order, or None (the order comes from the data).
        source: the `SOURCES` name that read them (``auto`` resolved; set by
            `read_recordings`).
    """

    recordings: list[Recording]
    reports: list[ReadReport]
    class_names: list[str] | None
    source: str = ""


@dataclass(frozen=True)
class Source:
    """One entry of `SOURCES`: a reader and what a user is told about it."""

    read: Callable[[str, ReadOptions], SourceData]
    description: str
    needs_path: bool = True


def _read_synthetic(path: str, options: ReadOptions) -> SourceData:
    spec = options.synthetic
    user = path.partition(":")[2] if path else ""
    if user:
        if len(user) != 1 or not "a" <= user <= "z":
            raise ConfigError(f"synthetic user expected one letter a-z. Received: {user!r}")
        spec = replace(spec, n_users=max(spec.n_users, ord(user) - ord("a") + 1))
    recordings = [r for r in make_recordings(spec) if not user or r.user == user]
    return SourceData(recordings, [], list(ACTIVITIES))


def _read_hhar(path: str, options: ReadOptions) -> SourceData:
    require("pandas", "train")
    from deepsense.data.hhar import HHAR_LABELS, read_hhar

    recordings, report = read_hhar(path, **options.reader_kwargs())
    return SourceData(recordings, [report], list(HHAR_LABELS))


def _read_hapt(path: str, options: ReadOptions) -> SourceData:
    from deepsense.data.hapt import class_names, read_hapt

    recordings, report = read_hapt(path, labels=options.labels, **options.reader_kwargs())
    return SourceData(recordings, [report], class_names(options.labels))


def _read_csv(path: str, options: ReadOptions) -> SourceData:
    require("pandas", "train")
    from deepsense.data.csv_format import read_sensor_csv

    recordings, report = read_sensor_csv(path, **options.reader_kwargs())
    return SourceData(recordings, [report], None)


def _read_ts(path: str, options: ReadOptions) -> SourceData:
    from deepsense.data.ts_format import read_ts

    if options.sample_rate_hz is None:
        raise ConfigError("a .ts file carries no clock: give its sample rate "
                          "(--sample-rate-hz)")
    read = dict(sample_rate_hz=options.sample_rate_hz, **options.reader_kwargs())
    recordings, report = read_ts(path, split="train" if options.test_path else None, **read)
    reports = [report]
    if options.test_path:
        test, test_report = read_ts(options.test_path, split="test", **read)
        recordings += test
        reports.append(test_report)
    return SourceData(recordings, reports, None)


#: Source name -> reader. ``auto`` (the default) infers one of these from the path.
SOURCES: dict[str, Source] = {
    "synthetic": Source(_read_synthetic, "generated IMU data (path: synthetic[:USER])",
                        needs_path=False),
    "hhar": Source(_read_hhar, "the raw HHAR folder (Activity recognition exp)"),
    "hapt": Source(_read_hapt, "the UCI HAPT folder (RawData/, activity_labels.txt)"),
    "csv": Source(_read_csv, "our sensor CSV"),
    "ts": Source(_read_ts, "a UEA/UCR .ts file (give --sample-rate-hz)"),
}


def infer_source(path: str | Path) -> str:
    """The source of a path: ``synthetic[:USER]``, a directory (HAPT if it holds RawData/,
    else HHAR), a .ts file, else csv."""
    text = str(path)
    if text == "synthetic" or text.startswith("synthetic:"):
        return "synthetic"
    if Path(text).is_dir():
        return "hapt" if (Path(text) / "RawData").is_dir() else "hhar"
    return "ts" if Path(text).suffix == ".ts" else "csv"


def read_recordings(source: str, path: str | Path | None,
                    options: ReadOptions = ReadOptions()) -> SourceData:
    """Read `path` as `source` (a `SOURCES` name, or ``auto``: inferred from the path).

    Raises:
        ConfigError: an unknown source, a missing path, a .ts file without its sample rate,
            a test file for a source other than ts, or a bad synthetic user.
        DataFormatError, FileNotFoundError: from the reader (bad rows with on_error "raise",
            missing files).
        MissingExtraError: the reader needs pandas (the 'train' extra).
    """
    if source == AUTO:
        if path is None:
            raise ConfigError("give a path to read, or the source 'synthetic'")
        source = infer_source(path)
    if source not in SOURCES:
        raise ConfigError(f"source expected one of {(AUTO, *SOURCES)}. Received: {source!r}")
    entry = SOURCES[source]
    if path is None and entry.needs_path:
        raise ConfigError(f"source {source!r} needs a path to read")
    if options.test_path is not None and source != "ts":
        raise ConfigError(f"a separate test file is read for source 'ts' only, not {source!r}")
    return replace(entry.read("" if path is None else str(path), options), source=source)


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every command that reads recordings shares (prepare, predict, replay):
    ``--source`` (default auto), ``--sample-rate-hz`` and ``--on-error``."""
    names = ", ".join(f"{name}: {entry.description}" for name, entry in SOURCES.items())
    parser.add_argument("--source", choices=(AUTO, *SOURCES), default=AUTO,
                        help=f"how to read recordings (default {AUTO}: synthetic[:USER], a "
                             f"folder with RawData/ is hapt, another folder hhar, a .ts file "
                             f"ts, anything else csv); {names}")
    parser.add_argument("--sample-rate-hz", type=float, help="sampling rate of a .ts file")
    parser.add_argument("--on-error", choices=("raise", "skip"),
                        help="bad rows: stop (default for csv, ts and hapt) or skip and "
                             "report (default for hhar)")
    parser.add_argument("--labels", choices=("activities", "all", "user"), default="activities",
                        help="hapt: the 6 activities (default), all 12 labels (with "
                             "transitions), or whole experiments labelled by user (UserID)")


def read_options(args: argparse.Namespace, **settings) -> ReadOptions:
    """`ReadOptions` from the flags of `add_source_arguments`, plus other `settings`."""
    return ReadOptions(on_error=args.on_error, sample_rate_hz=args.sample_rate_hz,
                       labels=args.labels, **settings)
