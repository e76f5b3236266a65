"""Loaders: every file format returns (x: np.ndarray, y: np.ndarray | None) after validation.

Formats: ``.npz`` (split keys ``train``/``valid``/``test`` or ``x_train``/``y_train``…, or ``X``/``y``), ``.npy``,
MNIST-style IDX (optionally ``.gz``), folders of PNG/JPEG images (sub-folder names become labels), CSV/Parquet
numeric tables.
"""
from __future__ import annotations

import gzip
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vaekit.errors import DataError

SPLIT_ALIASES = {"train": ("train", "x_train", "X_train"),
                 "valid": ("valid", "val", "validation", "x_valid", "x_val", "X_valid", "X_val"),
                 "test": ("test", "x_test", "X_test")}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
MAX_IDX_BYTES = 8 << 30


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
                    raise DataError(f"{path}: no array for split {split!r} (keys: {keys})")
        else:
            for cand in ("train", "x_train", "X_train", "X", "x", "data", "arr_0"):
                if cand in keys:
                    key = cand
                    break
            if key is None:
                if len(keys) != 1:
                    raise DataError(f"{path}: cannot tell which array holds the data (keys: {keys}); name a split")
                key = keys[0]
        try:
            x = npz[key]
            lk = "y" if key == "X" and "y" in keys else _label_key(npz, key)
            y = npz[lk] if lk else None
        except ValueError as e:
            raise DataError(f"{path}: array {key!r} cannot be read without pickle ({e})") from None
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
            body = f.read(n_bytes)
            if len(body) != n_bytes:
                raise DataError(f"{path}: IDX data is truncated ({len(body)} of {n_bytes} bytes)")
            if f.read(1):
                raise DataError(f"{path}: IDX file has trailing bytes after {dims}")
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read IDX file ({e})") from None
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _load_images(path: Path) -> Dataset:
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{path}: no PNG/JPEG images found in the folder")
    arrays, labels = [], []
    for p in files:
        try:
            with Image.open(p) as im:
                a = np.asarray(im.convert("L" if im.mode in ("1", "L", "LA") else "RGB"), dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"{p}: not a readable image ({e})") from None
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

    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as e:  # pandas raises many types for malformed files
        raise DataError(f"{path}: cannot read table ({e.__class__.__name__}: {str(e).splitlines()[0]})") from None
    bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise DataError(f"{path}: non-numeric column(s) {bad[:5]}; this loader takes numeric tables")
    return Dataset(df.to_numpy(dtype=np.float32), None, str(path))


def load_array(path: str | Path, split: str | None = None) -> Dataset:
    """Load one split of a data file; raises DataError naming the file and the problem."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    suffixes = "".join(path.suffixes[-2:]).lower()
    if path.is_dir():
        ds = _load_images(path)
    elif path.suffix == ".npz":
        ds = _load_npz(path, split)
    elif path.suffix == ".npy":
        try:
            ds = Dataset(np.load(path, allow_pickle=False), None, str(path))
        except (ValueError, OSError, EOFError) as e:
            raise DataError(f"{path}: not a readable .npy file ({e})") from None
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
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            a = np.asarray(im.convert("L" if im.mode in ("1", "L", "LA") else "RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from None
    return Dataset(a[None] if a.ndim == 2 else a.transpose(2, 0, 1)[None], None, str(path))


def load_splits(path: str | Path, valid_fraction: float = 0.1, seed: int = 0) -> dict[str, Dataset]:
    """train/valid/test from one file. A missing valid split is carved (seeded) from train; test may be absent."""
    path = Path(path)
    out: dict[str, Dataset] = {"train": load_array(path, "train" if path.suffix == ".npz" else None)}
    for split in ("valid", "test"):
        if path.suffix == ".npz":
            try:
                out[split] = load_array(path, split)
            except DataError as e:
                if "no array for split" not in str(e):
                    raise
    if "valid" not in out and valid_fraction > 0 and len(out["train"].x) >= 10:
        tr = out["train"]
        perm = np.random.default_rng(seed).permutation(len(tr.x))
        n_val = max(1, int(round(valid_fraction * len(tr.x))))
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
