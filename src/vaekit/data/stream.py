"""Out-of-core rows: data that stays on disk and is read batch by batch, so memory is bounded by the batch.

* ``.npy``: the header is parsed once; ``take(idx)`` reads the requested rows with positioned reads (``os.pread``,
  runs of consecutive rows coalesced). Not ``np.memmap``: every page a memory map touches counts toward the
  process's resident memory, so one shuffled epoch would map the whole file.
* Image folders: the file list is read once; ``take`` decodes just those images (each checked like the in-memory
  loader: size limit, one shape for all).
* CSV (in chunks) and Parquet (by row groups): spilled once, in chunks, to a float32 ``.npy`` cache beside the run,
  then read as above — random access keeps the trainer's seeded shuffle exact (and ``--resume`` exact), which a
  shuffle buffer over a sequential reader would not.

No limit on the number of rows applies here (that is the point); one row's size and the file's consistency with its
header are checked before anything is read.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from vaekit.data.loaders import IMAGE_SUFFIXES, MAX_ARRAY_BYTES, _image_array, npy_header, open_image
from vaekit.data.tables import iter_table_chunks
from vaekit.errors import DataError
from vaekit.files import atomic_save

CHUNK_ROWS = 4096  # rows per sequential chunk (validation passes, spilling tables)
STREAM_SUFFIXES = (".npy", ".csv", ".parquet", ".pq")


class Rows:
    """Rows on disk: ``len``, ``shape`` (of one row), ``dtype``, ``labels`` (or None), ``take(idx)`` and
    ``chunks()``; ``take`` returns the rows in the order of ``idx``."""

    source: str
    shape: tuple[int, ...]
    dtype: np.dtype
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def take(self, idx: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
        """The rows in file order, ``rows`` at a time."""
        for i in range(0, len(self), rows):
            yield self.take(np.arange(i, min(len(self), i + rows)))


class NpyRows(Rows):
    """A C-ordered ``.npy`` file read by positioned reads."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        self.source = str(path)
        try:
            with path.open("rb") as f:
                shape, dtype = npy_header(f, self.source)
                self._offset = f.tell()
                f.seek(0)
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                _, fortran, _ = read(f)
            size = path.stat().st_size
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
        if fortran and len(shape) > 1:
            raise DataError(f"{path}: array is stored in Fortran order; save it C-ordered (np.ascontiguousarray) "
                            "to stream it")
        if len(shape) < 2:
            raise DataError(f"{path}: expected examples along axis 0 with shape (N, …), got {shape}")
        self.shape, self.dtype, self._n = tuple(shape[1:]), dtype.newbyteorder("="), int(shape[0])
        self._file_dtype = dtype
        self._row_bytes = int(np.prod(self.shape)) * dtype.itemsize
        if self._row_bytes > MAX_ARRAY_BYTES:
            raise DataError(f"{path}: one example is {self._row_bytes} bytes, more than {MAX_ARRAY_BYTES}")
        if self._offset + self._n * self._row_bytes > size:
            raise DataError(f"{path}: truncated (header declares {self._n} rows of {self._row_bytes} bytes, the file "
                            f"holds {size - self._offset} bytes of data)")
        self._path = path
        self._fd: int | None = None

    def __len__(self) -> int:
        return self._n

    def __getstate__(self) -> dict[str, object]:  # a file descriptor does not travel to other processes
        return {**self.__dict__, "_fd": None}

    def take(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= self._n):
            raise DataError(f"{self.source}: row index out of range 0..{self._n - 1}")
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDONLY)
        order = np.argsort(idx, kind="stable")
        s = idx[order]
        buf = bytearray(len(idx) * self._row_bytes)
        view, rb, pos, i = memoryview(buf), self._row_bytes, 0, 0
        while i < len(s):  # one read per run of consecutive rows
            j = i + 1
            while j < len(s) and s[j] == s[j - 1] + 1:
                j += 1
            want = (j - i) * rb
            got = os.preadv(self._fd, [view[pos:pos + want]], self._offset + int(s[i]) * rb)
            if got != want:
                raise DataError(f"{self.source}: file shrank while being read (row {int(s[i])})")
            pos, i = pos + want, j
        sorted_rows = np.frombuffer(buf, dtype=self._file_dtype).reshape(len(idx), *self.shape)
        out = np.empty((len(idx), *self.shape), dtype=self.dtype)
        out[order] = sorted_rows
        return out

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)  # type: ignore[arg-type]


class ImageFolderRows(Rows):
    """PNG/JPEG files under a folder (sub-folder names → labels), decoded per batch."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        self.source = str(path)
        self._files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self._files:
            raise DataError(f"{path}: no PNG/JPEG images found in the folder")
        first = self._decode(self._files[0], None)
        self.shape, self.dtype = first.shape, first.dtype
        names = [p.parent.relative_to(path).as_posix() for p in self._files]
        classes = sorted(set(names))
        self.labels = np.array([classes.index(n) for n in names]) if len(classes) > 1 else None

    def _decode(self, p: Path, shape: tuple[int, ...] | None) -> np.ndarray:
        with open_image(p) as im:
            a = _image_array(p, im)
        a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
        if shape is not None and a.shape != shape:
            raise DataError(f"{p}: image shape {a.shape} differs from {shape} of {self._files[0].name}; "
                            "resize the images to one size")
        return a

    def __len__(self) -> int:
        return len(self._files)

    def take(self, idx: np.ndarray) -> np.ndarray:
        return np.stack([self._decode(self._files[int(i)], self.shape) for i in np.asarray(idx).reshape(-1)])


def spill_table(path: str | Path, cache: str | Path, rows: int = CHUNK_ROWS) -> NpyRows:
    """CSV/Parquet → a float32 ``.npy`` at ``cache`` written chunk by chunk (numeric columns only), then read as
    :class:`NpyRows`. A cache newer than the table is reused."""
    path, cache = Path(path), Path(cache)
    if cache.is_file() and cache.stat().st_mtime >= path.stat().st_mtime:
        return NpyRows(cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    raw = cache.with_name(cache.name + ".rows")
    try:
        n, width = 0, 0
        with raw.open("wb") as f:
            for df in iter_table_chunks(path, rows):
                bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
                if bad:
                    raise DataError(f"{path}: non-numeric column(s) {bad[:5]}; this loader takes numeric tables")
                if n and df.shape[1] != width:
                    raise DataError(f"{path}: a chunk has {df.shape[1]} columns, the first had {width}")
                width = df.shape[1]
                f.write(np.ascontiguousarray(df.to_numpy(dtype=np.float32)).tobytes())
                n += len(df)
        if not n:
            raise DataError(f"{path}: the table has no rows")

        def write(tmp: str) -> None:
            with open(tmp, "wb") as out, raw.open("rb") as src:
                np.lib.format.write_array_header_2_0(out, {"descr": "<f4", "fortran_order": False,
                                                           "shape": (n, width)})
                shutil.copyfileobj(src, out, 1 << 20)

        atomic_save(cache, write)
    finally:
        raw.unlink(missing_ok=True)
    return NpyRows(cache)


def open_rows(path: str | Path, cache_dir: str | Path) -> Rows:
    """A data file as out-of-core rows: ``.npy`` and image folders directly, CSV/Parquet via a ``.npy`` spill in
    ``cache_dir``; other formats (``.npz``: compressed members cannot be read by row) → DataError."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        return ImageFolderRows(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return NpyRows(path)
    if suffix in (".csv", ".parquet", ".pq"):
        return spill_table(path, Path(cache_dir) / (path.name + ".f32.npy"))
    raise DataError(f"{path}: streaming reads .npy, CSV, Parquet or an image folder, not {suffix or 'this file'} "
                    "(an .npz: save each split as .npy)")
