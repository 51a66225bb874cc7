"""Window features of a sharded prepared dataset, read from disk on demand (NumPy).

`ShardedWindows` stands in for the (n, T, F) ``x`` array of a `PreparedDataset` whose
windows do not fit in memory: indexing it with rows reads only the shards holding them,
and `iter_shards` walks the selected rows shard by shard for streaming training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from deepsense.errors import DataFormatError


class ShardedWindows:
    """(n, T, F) float32 windows stored in ``shard-*.npz`` files, by global row.

    Args:
        root: the prepared directory.
        shards: [{"file": name, "n_windows": n}] in row order (dataset.json ``shards``).
        window_shape: (T, F).
    """

    dtype = np.dtype(np.float32)
    ndim = 3

    def __init__(self, root: Path, shards: list[dict], window_shape: tuple[int, int]):
        self.root = Path(root)
        self.files = [self.root / s["file"] for s in shards]
        sizes = np.array([int(s["n_windows"]) for s in shards], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)])
        self.shape = (int(self.offsets[-1]), *window_shape)
        self._cached: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def shard(self, index: int) -> np.ndarray:
        """All windows of shard `index` (the last one read is kept)."""
        if self._cached is None or self._cached[0] != index:
            path = self.files[index]
            with np.load(path, allow_pickle=False) as npz:
                x = npz["x"]
            expected = (int(self.offsets[index + 1] - self.offsets[index]), *self.shape[1:])
            if x.shape != expected or x.dtype != self.dtype:
                raise DataFormatError(f"x expected float32 {expected}. Received: {x.dtype} "
                                      f"{x.shape}", path=path, field="x")
            self._cached = (index, x)
        return self._cached[1]

    def iter_shards(self, rows: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """(shard index, local rows) for the shards holding any of the global `rows`."""
        rows = np.asarray(rows, dtype=np.int64)
        owner = np.searchsorted(self.offsets, rows, side="right") - 1
        for index in np.unique(owner):
            yield int(index), rows[owner == index] - self.offsets[index]

    def __getitem__(self, rows) -> np.ndarray:
        if isinstance(rows, slice):
            rows = np.arange(len(self))[rows]
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        single = rows.ndim == 0
        rows = np.atleast_1d(rows).astype(np.int64)
        rows = np.where(rows < 0, rows + len(self), rows)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows out of range for {len(self)} windows")
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        positions = np.argsort(rows, kind="stable")
        done = 0
        for index, local in self.iter_shards(rows[positions]):
            out[positions[done:done + len(local)]] = self.shard(index)[local]
            done += len(local)
        return out[0] if single else out
