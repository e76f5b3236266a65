"""Loaders: every file format returns (x: np.ndarray, y: np.ndarray | None) after validation.

Formats: ``.npz`` (split keys ``train``/``valid``/``test`` or ``x_train``/``y_train``…, or ``X``/``y``), ``.npy``,
MNIST-style IDX (optionally ``.gz``), folders of PNG/JPEG images (sub-folder names become labels), CSV/Parquet
numeric tables.

Splits: an ``.npz`` has the splits its keys name; every other format holds one split, ``train``. Asking for a split
a file does not have is a DataError listing the splits it has (never another split under that name).
:func:`load_splits` needs at least MIN_TRAIN_ROWS training rows, and carves a validation split of at least
MIN_VALID_ROWS row (``valid_fraction`` of the rows) when the file has none: so at least 3 rows.
"""
from __future__ import annotations

import gzip
import math
import warnings
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

from vaekit.errors import DataError

SPLIT_ALIASES = {"train": ("train", "x_train", "X_train"),
                 "valid": ("valid", "val", "validation", "x_valid", "x_val", "X_valid", "X_val"),
                 "test": ("test", "x_test", "X_test")}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
# Untrusted sizes are checked against these before anything is allocated or decoded:
MAX_ARRAY_BYTES = 1 << 30  # one array read from a file (.npy, an .npz member, IDX, an image folder, a table): ≤ 1 GiB
MAX_ARRAY_VALUES = 1 << 28  # … and ≤ 268,435,456 values (1 GiB once converted to float32)
MAX_IDX_BYTES = MAX_ARRAY_BYTES
MAX_IMAGE_PIXELS = 1 << 24  # one image: ≤ 16,777,216 pixels (e.g. 4096×4096), read from its header before decoding
MAX_NPZ_MEMBERS = 10_000
MIN_TRAIN_ROWS = 2  # training examples needed (one gives no distribution to learn, and a NaN validation bound)
MIN_VALID_ROWS = 1  # rows a carved validation split has at least


@dataclass
class Dataset:
    """One split: ``x`` raw values (N, …), optional labels ``y`` (N,), and where it came from."""

    x: np.ndarray
    y: np.ndarray | None
    source: str


def _label_key(npz: "np.lib.npyio.NpzFile", key: str) -> str | None:
    for cand in (key.replace("x_", "y_").replace("X_", "y_"), f"y_{key}", f"{key}_labels", f"{key}_y"):
        if cand != key and cand in npz.files:
            return cand
    return None


def check_array_size(shape: tuple[int, ...], dtype: np.dtype, source: str, available: int | None = None) -> None:
    """Refuse (DataError) an array a header declares before it is allocated: more than MAX_ARRAY_VALUES values or
    MAX_ARRAY_BYTES bytes, or more bytes than the file holds (``available``)."""
    n = math.prod(shape)
    nbytes = n * dtype.itemsize
    if n > MAX_ARRAY_VALUES or nbytes > MAX_ARRAY_BYTES:
        raise DataError(f"{source}: header declares an array of shape {tuple(shape)} ({nbytes} bytes), more than the "
                        f"{MAX_ARRAY_BYTES} bytes / {MAX_ARRAY_VALUES} values allowed")
    if available is not None and nbytes > available:
        raise DataError(f"{source}: truncated (header declares shape {tuple(shape)} {dtype} = {nbytes} bytes, "
                        f"the file holds {available})")


def npy_header(f: IO[bytes], source: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of the ``.npy`` stream ``f`` from its magic and header alone; bad magic/header or an object
    dtype (pickle) → DataError."""
    try:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    except (ValueError, SyntaxError, TypeError, EOFError, RecursionError, MemoryError) as e:
        raise DataError(f"{source}: not a readable .npy array ({e.__class__.__name__}: "
                        f"{str(e).splitlines()[0][:120] if str(e) else ''})") from None
    if dtype.hasobject:
        raise DataError(f"{source}: holds Python objects (would need pickle); only numeric arrays are read")
    return tuple(int(s) for s in shape), dtype


def load_npy(path: str | Path) -> np.ndarray:
    """A ``.npy`` array, its header checked against the file size and the memory limits before loading."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            shape, dtype = npy_header(f, str(path))
            check_array_size(shape, dtype, str(path), path.stat().st_size - f.tell())
            f.seek(0)
            return np.load(f, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: not a readable .npy file ({e})") from None


def _check_npz_members(path: Path, keys: list[str]) -> None:
    """Each member to be loaded: its uncompressed size (zip directory) and its .npy header checked before reading."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_NPZ_MEMBERS:
                raise DataError(f"{path}: {len(infos)} arrays in one .npz, more than the {MAX_NPZ_MEMBERS} allowed")
            by_name = {i.filename: i for i in infos}
            for key in keys:
                info = by_name.get(f"{key}.npy") or by_name.get(key)
                if info is None:
                    continue
                if info.file_size > MAX_ARRAY_BYTES + 65536:
                    raise DataError(f"{path}[{key}]: {info.file_size} bytes uncompressed, more than the "
                                    f"{MAX_ARRAY_BYTES} allowed for one array")
                with zf.open(info) as f:
                    shape, dtype = npy_header(f, f"{path}[{key}]")
                    header_len = f.tell()
                check_array_size(shape, dtype, f"{path}[{key}]", info.file_size - header_len)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e.__class__.__name__}: {e})") from None


def _load_npz(path: Path, split: str | None) -> Dataset:
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a readable .npz file (not a zip archive of arrays)")
    try:
        npz = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    with npz:
        keys = list(npz.files)
        key: str | None = None
        if split is not None:
            for cand in SPLIT_ALIASES.get(split, (split,)):
                if cand in keys:
                    key = cand
                    break
            if key is None:
                if split == "train" and "X" in keys:
                    key = "X"
                else:
                    have = [s for s, names in SPLIT_ALIASES.items() if any(n in keys for n in names)]
                    if "X" in keys and "train" not in have:
                        have.insert(0, "train")
                    raise DataError(f"{path}: no array for split {split!r}; the file has split(s) {have} "
                                    f"(keys: {keys})")
        else:
            for cand in ("train", "x_train", "X_train", "X", "x", "data", "arr_0"):
                if cand in keys:
                    key = cand
                    break
            if key is None:
                if len(keys) != 1:
                    raise DataError(f"{path}: cannot tell which array holds the data (keys: {keys}); name a split")
                key = keys[0]
        lk = "y" if key == "X" and "y" in keys else _label_key(npz, key)
        _check_npz_members(path, [key] + ([lk] if lk else []))
        try:
            x = npz[key]
            y = npz[lk] if lk else None
        except ValueError as e:
            raise DataError(f"{path}: array {key!r} cannot be read without pickle ({e})") from None
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as e:
            raise DataError(f"{path}: array {key!r} is corrupt ({e.__class__.__name__}: {e})") from None
    if y is not None and len(y) != len(x):
        raise DataError(f"{path}: {len(x)} examples but {len(y)} labels")
    return Dataset(x, y, f"{path}[{key}]")


def read_idx(path: Path) -> np.ndarray:
    """MNIST-style IDX (optionally gzip): magic 0 0 type ndim, big-endian dims, then the values."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in IDX_DTYPES or not 1 <= head[3] <= 8:
                raise DataError(f"{path}: not an IDX file (bad magic {head.hex()})")
            dtype = np.dtype(IDX_DTYPES[head[2]])
            dims_raw = f.read(4 * head[3])
            if len(dims_raw) < 4 * head[3]:
                raise DataError(f"{path}: IDX header is truncated")
            dims = [int.from_bytes(dims_raw[i:i + 4], "big") for i in range(0, len(dims_raw), 4)]
            n_bytes = math.prod(dims) * dtype.itemsize
            if n_bytes > MAX_IDX_BYTES:
                raise DataError(f"{path}: IDX header declares {n_bytes} bytes, more than the {MAX_IDX_BYTES} allowed")
            check_array_size(tuple(dims), dtype, str(path),
                             None if opener is gzip.open else path.stat().st_size - 4 - 4 * head[3])
            body = f.read(n_bytes)
            if len(body) != n_bytes:
                raise DataError(f"{path}: IDX data is truncated ({len(body)} of {n_bytes} bytes)")
            if f.read(1):
                raise DataError(f"{path}: IDX file has trailing bytes after {dims}")
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read IDX file ({e})") from None
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


@contextmanager
def open_image(path: str | Path, what: str = "image", max_pixels: int = MAX_IMAGE_PIXELS) -> Iterator[Any]:
    """A PIL image opened lazily: its declared width × height is checked against ``max_pixels`` (and PIL's own
    decompression-bomb limit is reported as one line) before any pixel is decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as e:
        raise DataError(f"{path}: {what} is too large ({e}); at most {max_pixels} pixels are allowed") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{path}: not a readable {what} ({e.__class__.__name__}: {e})") from None
    with im:
        w, h = im.size
        if w * h > max_pixels:
            raise DataError(f"{path}: {what} is {w}×{h} = {w * h} pixels, more than the {max_pixels} allowed")
        yield im


def _image_array(p: Path, im: Any) -> np.ndarray:
    from PIL import UnidentifiedImageError

    try:
        return np.asarray(im.convert("L" if im.mode in ("1", "L", "LA") else "RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{p}: not a readable image ({e.__class__.__name__}: {e})") from None


def _load_images(path: Path) -> Dataset:
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{path}: no PNG/JPEG images found in the folder")
    arrays, labels = [], []
    total = 0
    for p in files:
        with open_image(p) as im:
            channels = 1 if im.mode in ("1", "L", "LA") else 3
            total += im.size[0] * im.size[1] * channels
            if total > MAX_ARRAY_VALUES:
                raise DataError(f"{path}: the images hold more than the {MAX_ARRAY_VALUES} values allowed "
                                f"(stopped at {p.name}, image {len(arrays) + 1} of {len(files)})")
            a = _image_array(p, im)
        if arrays and a.shape != arrays[0].shape:
            raise DataError(f"{p}: image shape {a.shape} differs from {arrays[0].shape} of {files[0].name}; "
                            "resize the images to one size")
        arrays.append(a)
        labels.append(p.parent.relative_to(path).as_posix())
    x = np.stack(arrays)
    if x.ndim == 4:  # (N, H, W, C) → (N, C, H, W)
        x = x.transpose(0, 3, 1, 2)
    names = sorted(set(labels))
    y = np.array([names.index(lab) for lab in labels]) if len(names) > 1 else None
    return Dataset(x, y, str(path))


def _load_table(path: Path) -> Dataset:
    import pandas as pd

    size = path.stat().st_size
    if size > MAX_ARRAY_BYTES:
        raise DataError(f"{path}: {size} bytes, more than the {MAX_ARRAY_BYTES} allowed for a data table")
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq

            meta = pq.read_metadata(path)
            if meta.num_rows * max(1, meta.num_columns) > MAX_ARRAY_VALUES:
                raise DataError(f"{path}: {meta.num_rows} rows × {meta.num_columns} columns, more than the "
                                f"{MAX_ARRAY_VALUES} values allowed")
        except (ImportError, OSError, ValueError) as e:
            if isinstance(e, DataError):
                raise
            if not isinstance(e, ImportError):
                raise DataError(f"{path}: cannot read table ({e.__class__.__name__}: {str(e)[:200]})") from None
    if path.suffix.lower() == ".csv":
        from vaekit.data.tables import check_header

        check_header(path)  # pandas would rename a repeated column name (a, a.1)
    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as e:  # pandas raises many types for malformed files
        raise DataError(f"{path}: cannot read table ({e.__class__.__name__}: {str(e).splitlines()[0]})") from None
    bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise DataError(f"{path}: non-numeric column(s) {bad[:5]}; this loader takes numeric tables")
    return Dataset(df.to_numpy(dtype=np.float32), None, str(path))


def load_array(path: str | Path, split: str | None = None) -> Dataset:
    """Load one split of a data file (None: an .npz's default array, or the only split of other formats); raises
    DataError naming the file and the problem, also for a ``split`` the file does not have."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    suffixes = "".join(path.suffixes[-2:]).lower()
    if path.is_dir() and path.suffix.lower() in {".npz", ".npy", ".gz", ".csv", ".parquet", *IMAGE_SUFFIXES}:
        raise DataError(f"{path}: is a folder, expected a file")
    if split is not None and split != "train" and path.suffix != ".npz":
        what = "an image folder" if path.is_dir() else f"a {path.suffix or 'single-array'} file"
        raise DataError(f"{path}: no split {split!r}; {what} has one split, ['train'] (put the data in an .npz with "
                        "train/valid/test keys for a held-out split)")
    if path.is_dir():
        ds = _load_images(path)
    elif path.suffix == ".npz":
        ds = _load_npz(path, split)
    elif path.suffix == ".npy":
        ds = Dataset(load_npy(path), None, str(path))
    elif "idx" in path.name or suffixes.endswith("ubyte.gz") or path.name.endswith("ubyte"):
        ds = Dataset(read_idx(path), None, str(path))
    elif path.suffix.lower() in (".csv", ".parquet"):
        ds = _load_table(path)
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        ds = _load_images_single(path)
    else:
        raise DataError(f"{path}: unknown data format (use .npz, .npy, IDX, an image folder, .csv or .parquet)")
    if ds.x.ndim < 2 or len(ds.x) == 0:
        raise DataError(f"{ds.source}: expected an array of examples (N, …) with N ≥ 1, got shape {ds.x.shape}")
    if ds.x.dtype.kind not in "biuf":
        raise DataError(f"{ds.source}: dtype {ds.x.dtype} is not numeric")
    return ds


def _load_images_single(path: Path) -> Dataset:
    with open_image(path) as im:
        a = _image_array(path, im)
    return Dataset(a[None] if a.ndim == 2 else a.transpose(2, 0, 1)[None], None, str(path))


def load_splits(path: str | Path, valid_fraction: float = 0.1, seed: int = 0) -> dict[str, Dataset]:
    """train/valid/test from one file. A missing valid split is carved (seeded) from train; test may be absent."""
    path = Path(path)
    out: dict[str, Dataset] = {"train": load_array(path, "train")}
    for split in ("valid", "test"):
        if path.suffix == ".npz":
            try:
                out[split] = load_array(path, split)
            except DataError as e:
                if "no array for split" not in str(e):
                    raise
    n = len(out["train"].x)
    carve = "valid" not in out and valid_fraction > 0
    need = MIN_TRAIN_ROWS + (MIN_VALID_ROWS if carve else 0)
    if n < need:
        raise DataError(f"{out['train'].source}: {n} training example(s); at least {need} are needed "
                        f"({MIN_TRAIN_ROWS} to train" + (f" + {MIN_VALID_ROWS} carved for validation)" if carve else ")"))
    if carve:
        tr = out["train"]
        perm = np.random.default_rng(seed).permutation(len(tr.x))
        n_val = min(n - MIN_TRAIN_ROWS, max(MIN_VALID_ROWS, int(round(valid_fraction * len(tr.x)))))
        vi, ti = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        out["valid"] = Dataset(tr.x[vi], None if tr.y is None else tr.y[vi], tr.source + "[valid part]")
        out["train"] = Dataset(tr.x[ti], None if tr.y is None else tr.y[ti], tr.source)
    return out


def infer_image_shape(x: np.ndarray) -> tuple[int, ...]:
    """Per-example shape for the model: (C, H, W) for images, (D,) for vectors; square vectors become (1, s, s)."""
    shape = x.shape[1:]
    if len(shape) == 2:
        return (1, *shape)
    if len(shape) == 3:
        return shape if shape[0] in (1, 3, 4) else (shape[2], shape[0], shape[1])
    if len(shape) == 1:
        s = int(round(math.sqrt(shape[0])))
        return (1, s, s) if s * s == shape[0] and s >= 8 else shape
    raise DataError(f"cannot interpret example shape {shape}")
