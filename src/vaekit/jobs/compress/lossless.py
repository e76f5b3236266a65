"""File-level lossless compression: an array file → ``.vkz`` (bits-back under a trained VAE) → the same array."""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from vaekit.core.checkpoint import load_model
from vaekit.core.workflows import resolve_model_dir
from vaekit.data import load_array
from vaekit.errors import CorruptFileError, VaekitError
from vaekit.jobs.compress.bitsback import CODEC, MAX_ITEMS, BitsBackCodec
from vaekit.jobs.compress.container import Container, read, write_atomic
from vaekit.runtime import progress_bar, resolve_threads, threads


def _load_model(model_dir: str | Path) -> tuple[Any, Path]:
    d = resolve_model_dir(model_dir)
    model, _ = load_model(d)
    return model, Path(d).resolve()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.resolve() == b.resolve()
    except OSError:
        return False


def compress_array_file(model_dir: str | Path, src: str | Path, dst: str | Path, split: str | None = None,
                        latent_bits: int = 12, progress: bool = False) -> dict[str, Any]:
    """Losslessly code one split of an array file (.npz/.npy/IDX/images) with bits-back; returns sizes and timing."""

    src, dst = Path(src), Path(dst)
    if _same_file(src, dst):
        raise VaekitError(f"{dst}: refusing to overwrite the input file")
    ds = load_array(src, split if split is not None else ("test" if src.suffix == ".npz" else None))
    model, mdir = _load_model(model_dir)
    codec = BitsBackCodec(model, latent_bits=latent_bits)
    x = np.asarray(ds.x)
    bar = _bar(len(x), "compress", progress)
    t = time.perf_counter()
    with threads(_threads(model)):  # the bytes do not depend on it; a spinning second thread can cost 3×
        data = codec.encode(x, progress=bar.update if bar else None, extra_meta={
            "model_path": str(mdir), "dtype": str(x.dtype), "array_shape": [int(s) for s in x.shape]})
    seconds = time.perf_counter() - t
    if bar:
        bar.close()
    write_atomic(dst, data)
    return {"items": len(x), "raw_bytes": int(x.size * (1 if x.dtype == np.uint8 else x.itemsize)),
            "file_bytes": len(data), "bits_per_dim": 8 * len(data) / max(1, x.size), "seconds": seconds}


def decompress_array(box: Container, model_dir: str | Path | None, source: str = "file",
                     progress: bool = False) -> np.ndarray:
    """Decode a bits-back container back to the original array (dtype and shape restored)."""
    if box.codec != CODEC:
        raise VaekitError(f"{source}: not a lossless file (codec {box.codec!r})")
    if not isinstance(box.meta, dict):
        raise CorruptFileError(f"{source}: corrupt bits-back header (meta is not an object)")
    if model_dir is None:
        model_dir = box.meta.get("model_path")
        if not isinstance(model_dir, str):
            raise VaekitError(f"{source}: no model recorded in the file; pass --model")
    latent_bits = _meta_int(box.meta, "latent_bits", 12, 4, 16, source)
    n = _meta_int(box.meta, "n", 0, 0, MAX_ITEMS, source)
    dtype, shape = box.meta.get("dtype", "int32"), box.meta.get("array_shape")
    if dtype not in ("uint8", "int32", "int64", "bool", "int16", "uint16", "float32", "float64"):
        raise CorruptFileError(f"{source}: unsupported array dtype {str(dtype)[:40]!r} in the header")
    if shape is not None and (not isinstance(shape, list) or not 1 <= len(shape) <= 32 or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in shape)):
        raise CorruptFileError(f"{source}: corrupt header (array_shape must be a list of integers >= 0)")
    model, _ = _load_model(model_dir)
    codec = BitsBackCodec(model, latent_bits=latent_bits)
    bar = _bar(n, "decompress", progress)
    with threads(_threads(model)):
        out = codec.decode(box, source, progress=bar.update if bar else None)
    if bar:
        bar.close()
    if shape is not None:
        if math.prod(shape) != out.size or (shape and shape[0] != len(out)):
            raise CorruptFileError(f"{source}: corrupt header (array_shape does not fit the {len(out)} decoded "
                                   "items)")
        out = out.reshape(shape)
    return out.astype(dtype)


def _threads(model: Any) -> int:
    """The runtime's load-aware thread count (OMP_NUM_THREADS, else one for small models, else the idle cores)."""
    return resolve_threads(None, sum(p.numel() for p in model.parameters()))


def _meta_int(meta: dict[str, Any], key: str, default: int, lo: int, hi: int, source: str) -> int:
    """An integer field of a bits-back header in lo..hi, else a one-line CorruptFileError."""
    v = meta.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise CorruptFileError(f"{source}: corrupt header ({key} must be an integer in {lo}..{hi})")
    return v


def decompress_array_file(src: str | Path, dst: str | Path, model_dir: str | Path | None = None,
                          progress: bool = False) -> dict[str, Any]:
    """``.vkz`` (lossless) → ``.npy`` holding exactly the coded array."""
    src, dst = Path(src), Path(dst)
    if _same_file(src, dst):
        raise VaekitError(f"{dst}: refusing to overwrite the input file")
    if dst.suffix.lower() != ".npy":
        raise VaekitError(f"{dst}: a lossless file decodes to a NumPy array; give the output a .npy name")
    box = read(src)
    t = time.perf_counter()
    x = decompress_array(box, model_dir, str(src), progress)
    seconds = time.perf_counter() - t
    import io

    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=False)
    write_atomic(dst, buf.getvalue())
    return {"items": len(x), "shape": list(x.shape), "seconds": seconds}


def _bar(total: int, desc: str, on: bool) -> Any:
    return progress_bar(total=total, desc=desc, unit="item", leave=False) if on else None
