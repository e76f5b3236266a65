"""Lossy learned image codec: a folder of rate–distortion VAEs (one per quality level) + ``.vkz`` files.

Codec folder: ``config.json`` (format ``vaekit-codec``, architecture, λ per level, low → high quality) and
``model.safetensors`` (weights of every level as ``levels.{q}.*``, including the integer coding tables).
A ``.vkz`` file made by :func:`compress_image` holds meta [h, w, c, q] (+ the codec folder's path when asked
for, so ``decompress`` finds it without ``--model``) and the range-coded
latents ŷ = round(g_a(pad(x))); the decoder returns crop(g_s(ŷ)) rounded to uint8. Images of any size are
edge-padded to a multiple of the stride s = 2^n_down and cropped back after decoding.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vaekit.data.loaders import open_image
from vaekit.errors import CheckpointError, CorruptFileError, DataError, VaekitError
from vaekit.files import (
    atomic_save,
    atomic_write_bytes,
    atomic_write_text,
    check_state_dict,
    document_digest,
    is_digest,
    read_json,
    read_tensors,
    weights_digest,
)
from vaekit.jobs.compress.container import (
    Container,
    check_model,
    fingerprint,
    pack,
    read,
    unpack,
    write_atomic,
)
from vaekit.jobs.compress.entropy import (
    PRECISION,
    TOTAL,
    check_tables,
    decode_latents,
    encode_latents,
)
from vaekit.jobs.compress.metrics import psnr
from vaekit.jobs.compress.rd_model import RDConfig, RDNet

CODEC = "vaekit-lossy-image"
FORMAT, FORMAT_VERSION = "vaekit-codec", 1
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
# Image size limits, checked (compress: from the image header; decompress: from the .vkz header) before anything is
# allocated: sides ≤ 32768, ≤ 4,194,304 pixels (2048×2048), and the synthesis transform's working set, measured at
# ≈ (4.5·N + 48) bytes per pixel for N filters, ≤ DECODE_BYTES (1.25 GiB), so one decode stays under ~1.5 GB.
MAX_SIDE = 1 << 15
MAX_PIXELS = 1 << 22
DECODE_BYTES = 5 << 28
MAX_CODEC_VALUES = 50_000_000  # weights + tables of all levels of a codec folder, estimated before building
MIN_PAYLOAD_SLACK_BITS = 128  # a range coder's output is never this much shorter than the symbols' information


def decode_bytes(cfg: RDConfig, h: int, w: int) -> int:
    """Estimated working set (bytes) of coding an h×w image with a codec of this architecture."""
    return h * w * (5 * cfg.N + 48)


def size_problem(cfg: RDConfig, h: int, w: int) -> str | None:
    """Why an h×w image is out of range for this codec (sides, pixels, working set), or None."""
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE and h * w <= MAX_PIXELS):
        return f"image size {h}×{w} is out of range (sides 1..{MAX_SIDE}, at most {MAX_PIXELS} pixels)"
    if decode_bytes(cfg, h, w) > DECODE_BYTES:
        return (f"image size {h}×{w} needs about {decode_bytes(cfg, h, w) >> 20} MiB with this codec (N={cfg.N}), "
                f"more than the {DECODE_BYTES >> 20} MiB allowed")
    return None


class ImageCodec(nn.Module):
    """All quality levels of one codec; ``levels[q]`` is the RD-VAE trained with ``lambdas[q]`` (λ decreasing)."""

    def __init__(self, cfg: RDConfig, lambdas: list[float], info: list[dict[str, Any]] | None = None) -> None:
        super().__init__()
        if not lambdas or any(not float(lm) > 0 for lm in lambdas):
            raise VaekitError(f"a codec needs at least one positive lambda, got {lambdas}")
        self.cfg = cfg
        self.lambdas = [float(lm) for lm in lambdas]
        self.info = info or [{} for _ in lambdas]
        self.levels = nn.ModuleList(RDNet(cfg) for _ in lambdas)
        self.source_dir: Path | None = None
        self._fp: bytes | None = None
        self.eval()

    def config_dict(self) -> dict[str, Any]:
        """What the fingerprint covers besides the weights: architecture, λs, table precision."""
        return {"format": FORMAT, "version": FORMAT_VERSION, "codec": self.cfg.to_dict(),
                "lambdas": self.lambdas, "precision": PRECISION}

    @property
    def fingerprint(self) -> bytes:
        """BLAKE2b-128 of config + weights + tables (cached; the codec is frozen once loaded)."""
        if self._fp is None:
            self._fp = fingerprint(self, self.config_dict())
        return self._fp

    def level_index(self, quality: int) -> int:
        """Quality q ∈ [−L, L): 0 = lowest rate, −1 = highest quality."""
        L = len(self.levels)
        if not isinstance(quality, (int, np.integer)) or not -L <= int(quality) < L:
            raise VaekitError(f"quality must be an integer in 0..{L - 1} (or -1 for the highest), got {quality!r}")
        return int(quality) % L

    def tables(self, q: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        net = self.levels[q]
        return net.table_freq.numpy(), net.table_lo.numpy(), net.table_len.numpy()


# --- codec folder ---------------------------------------------------------------------------------------------
def save_codec(codec: ImageCodec, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model.safetensors`` then ``config.json`` atomically; every level must have its tables built."""
    from safetensors.torch import save as st_save

    directory = Path(directory)
    for q in range(len(codec.levels)):
        check_tables(*codec.tables(q), source=f"{directory} level {q}")
    state = {k: v.detach().cpu().contiguous() for k, v in codec.state_dict().items()}
    raw = st_save(state, metadata={"format": FORMAT})
    atomic_write_bytes(directory / WEIGHTS_FILE, raw)
    doc = dict(codec.config_dict(), levels=codec.info, extra=extra or {}, weights_blake2b=weights_digest(raw))
    doc = json.loads(json.dumps(doc))  # the JSON form is what the config digest covers
    doc["config_blake2b"] = document_digest(doc, "config_blake2b")
    atomic_write_text(directory / CONFIG_FILE, json.dumps(doc, indent=2, sort_keys=True))
    codec.source_dir, codec._fp = directory.resolve(), None
    return directory


def load_codec(directory: str | Path) -> ImageCodec:
    """Read a codec folder (format/version/shapes/tables checked before use) → ImageCodec in eval mode."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: codec folder not found")
    doc = read_json(directory / CONFIG_FILE, "codec config")
    if doc.get("format") != FORMAT:
        raise CheckpointError(f"{directory / CONFIG_FILE}: not a vaekit image codec (format {doc.get('format')!r}; "
                              f"train one with 'vaekit codec train')")
    if doc.get("version") != FORMAT_VERSION or doc.get("precision") != PRECISION:
        raise CheckpointError(f"{directory / CONFIG_FILE}: codec version {doc.get('version')!r}/precision "
                              f"{doc.get('precision')!r} not supported "
                              f"(this vaekit reads {FORMAT_VERSION}/{PRECISION})")
    if not is_digest(doc.get("weights_blake2b")) or not is_digest(doc.get("config_blake2b")):
        raise CheckpointError(f"{directory / CONFIG_FILE}: its checksums (weights_blake2b, config_blake2b) are missing "
                              "or malformed; the codec cannot be verified (retrain it with this vaekit)")
    try:
        same = document_digest(doc, "config_blake2b") == doc["config_blake2b"]
    except (ValueError, RecursionError):
        same = False
    if not same:
        raise CheckpointError(f"{directory / CONFIG_FILE}: does not match its checksum (config_blake2b): the file "
                              "was edited or damaged")
    lambdas, info = doc.get("lambdas"), doc.get("levels")
    if not isinstance(lambdas, list) or not isinstance(doc.get("codec"), dict) or not isinstance(info, list) \
            or len(info) != len(lambdas) or not 1 <= len(lambdas) <= 64:
        raise CheckpointError(f"{directory / CONFIG_FILE}: corrupt codec config (levels/lambdas)")
    cfg = RDConfig.from_dict(doc["codec"])
    n_values = cfg.parameter_estimate * len(lambdas)
    if n_values > MAX_CODEC_VALUES:
        raise CheckpointError(f"{directory / CONFIG_FILE}: the codec config describes about {n_values:.3g} values "
                              f"({len(lambdas)} level(s) of N={cfg.N}, M={cfg.M}, kernel {cfg.kernel}), more than the "
                              f"{MAX_CODEC_VALUES:,} allowed")
    codec = ImageCodec(cfg, lambdas, info)
    state, _ = read_tensors(directory / WEIGHTS_FILE, "codec weights", doc.get("weights_blake2b"), max_values=n_values)
    for q, net in enumerate(codec.levels):
        t = state.get(f"levels.{q}.table_freq")
        if t is None or t.ndim != 2 or t.dtype != torch.int32:
            raise CheckpointError(f"{directory / WEIGHTS_FILE}: level {q} has no valid coding tables")
        net.resize_tables(int(t.shape[1]))
    check_state_dict(codec, state, str(directory / WEIGHTS_FILE))
    codec.load_state_dict(state)
    for q in range(len(codec.levels)):
        try:
            check_tables(*codec.tables(q), source=f"{directory / WEIGHTS_FILE} level {q}")
        except VaekitError as e:
            raise CheckpointError(str(e)) from None
    codec.source_dir = directory.resolve()
    return codec.eval()


CodecLike = Union[ImageCodec, str, Path]


def _as_codec(model: CodecLike) -> ImageCodec:
    return model if isinstance(model, ImageCodec) else load_codec(model)


# --- images ---------------------------------------------------------------------------------------------------
def _to_chw(image: np.ndarray, channels: int) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise DataError(f"image must be uint8, got {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    c = 1 if a.ndim == 2 else (a.shape[2] if a.ndim == 3 else -1)
    if c not in (1, 3):
        raise DataError(f"image must be H×W (grayscale) or H×W×3 (RGB), got shape {a.shape}")
    if c != channels:
        kind = {1: "grayscale", 3: "RGB"}
        raise DataError(f"this codec is trained for {kind[channels]} images, got a {kind[c]} image {a.shape}")
    h, w = a.shape[:2]
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE and h * w <= MAX_PIXELS):
        raise DataError(f"image size {h}×{w} is out of range (sides 1..{MAX_SIDE}, at most {MAX_PIXELS} pixels)")
    return a[None] if c == 1 else np.ascontiguousarray(a.transpose(2, 0, 1))


def pad_image(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Edge-replicate (B,C,H,W) to H' = ⌈H/s⌉·s, W' = ⌈W/s⌉·s."""
    h, w = x.shape[-2:]
    ph, pw = -h % stride, -w % stride
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


def _to_uint8(x_hat: torch.Tensor, h: int, w: int) -> np.ndarray:
    """Crop to h×w, clamp to [0,1], round(255·x̂) → H×W or H×W×3 uint8."""
    a = torch.round(x_hat[0, :, :h, :w].clamp(0, 1) * 255).to(torch.uint8).numpy()
    return a[0] if a.shape[0] == 1 else np.ascontiguousarray(a.transpose(1, 2, 0))


@torch.no_grad()
def analyse(codec: ImageCodec, image: np.ndarray, quality: int) -> tuple[int, np.ndarray]:
    """(level q, integer latents ŷ = round(g_a(pad(x))) as int32 (M, ⌈H/s⌉, ⌈W/s⌉))."""
    q = codec.level_index(quality)
    chw = _to_chw(image, codec.cfg.channels)
    problem = size_problem(codec.cfg, *chw.shape[1:])
    if problem:
        raise DataError(problem)
    x = torch.from_numpy(chw.astype(np.float32)).div_(255)[None]
    y = codec.levels[q].g_a(pad_image(x, codec.cfg.stride))
    return q, torch.round(y)[0].to(torch.int32).numpy()


@torch.no_grad()
def synthesize(codec: ImageCodec, q: int, y_hat: np.ndarray, h: int, w: int) -> np.ndarray:
    """x̂ = crop(g_s(ŷ)) as uint8, the exact output of the decoder."""
    return _to_uint8(codec.levels[q].g_s(torch.from_numpy(y_hat).float()[None]), h, w)


def compress_image(model: CodecLike, image: np.ndarray, quality: int = -1, embed_model_path: bool = False) -> bytes:
    """uint8 image (H×W or H×W×3) → ``.vkz`` bytes at quality level ``quality``."""
    codec = _as_codec(model)
    q, y_hat = analyse(codec, image, quality)
    h, w = np.asarray(image).shape[:2]
    return _pack(codec, q, y_hat, int(h), int(w), embed_model_path)


def _pack(codec: ImageCodec, q: int, y_hat: np.ndarray, h: int, w: int, embed_model_path: bool = False) -> bytes:
    """Container: meta [h, w, c, q(, codec folder path)] + range-coded ŷ."""
    meta: list[Any] = [h, w, codec.cfg.channels, q]
    if embed_model_path and codec.source_dir is not None:
        meta.append(str(codec.source_dir))
    return pack(CODEC, codec.fingerprint, meta, encode_latents(y_hat, *codec.tables(q)))


def _meta_fields(box: Container, source: str) -> tuple[Any, Any, Any, Any, Any]:
    """(h, w, c, q, model path or None) from a version-2 list or a version-1 object meta."""
    m = box.meta
    if isinstance(m, list) and len(m) in (4, 5):
        return (*m[:4], m[4] if len(m) == 5 else None)
    if isinstance(m, dict):
        try:
            return (*(m[k] for k in ("h", "w", "c", "q")), m.get("model_path"))
        except KeyError as e:
            raise CorruptFileError(f"{source}: lossy header lacks field {e}") from None
    raise CorruptFileError(f"{source}: corrupt lossy header (expected [h, w, c, q])")


def _check_meta(box: Container, codec: ImageCodec, source: str) -> tuple[int, int, int]:
    h, w, c, q, _ = _meta_fields(box, source)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (h, w, c, q)):
        raise CorruptFileError(f"{source}: lossy header fields h/w/c/q must be integers")
    problem = size_problem(codec.cfg, h, w)
    if problem:
        raise CorruptFileError(f"{source}: header: {problem}")
    if c != codec.cfg.channels:
        raise CorruptFileError(f"{source}: header says {c} channel(s), the codec codes {codec.cfg.channels}")
    if not 0 <= q < len(codec.levels):
        raise CorruptFileError(f"{source}: quality level {q} in the header, the codec has {len(codec.levels)}")
    return h, w, q


def decompress_image(data: bytes | Container, model: CodecLike, source: str = "data") -> np.ndarray:
    """``.vkz`` bytes → uint8 image; refuses another codec/model (WrongModelError) or a bad header."""
    box = data if isinstance(data, Container) else unpack(data, source)
    codec = _as_codec(model)
    check_model(box, codec.fingerprint, CODEC, source)
    h, w, q = _check_meta(box, codec, source)
    s = codec.cfg.stride
    shape = (codec.cfg.M, -(-h // s), -(-w // s))
    _check_payload(box.payload, shape, codec.tables(q), h, w, source)
    y_hat = decode_latents(box.payload, shape, *codec.tables(q), source=source)
    return synthesize(codec, q, y_hat, h, w)


def _check_payload(payload: bytes, shape: tuple[int, int, int], tables: tuple[np.ndarray, np.ndarray, np.ndarray],
                   h: int, w: int, source: str) -> None:
    """Refuse an empty payload, or one shorter than the least information the claimed latents can carry: every
    symbol of channel c costs at least −log₂(max_f_c / 2^P) bits under the integer tables."""
    if not payload:
        raise CorruptFileError(f"{source}: empty lossy payload (the header claims a {h}×{w} image)")
    freq, _, lens = tables
    fmax = np.array([int(freq[c, :int(lens[c])].max()) for c in range(freq.shape[0])], dtype=np.float64)
    min_bits = shape[1] * shape[2] * float(-np.log2(fmax / TOTAL).sum())
    if 8 * len(payload) + MIN_PAYLOAD_SLACK_BITS < min_bits:
        raise CorruptFileError(f"{source}: the {len(payload)}-byte payload is too short for the {h}×{w} image its "
                               f"header claims (at least {int(min_bits // 8)} bytes)")


# --- files ----------------------------------------------------------------------------------------------------
def read_image(path: str | Path) -> np.ndarray:
    """PNG/JPEG/... → uint8 H×W (L, 1) or H×W×3 (RGB, P); an opaque alpha channel is dropped, others refused."""
    from PIL import UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image not found")
    try:
        with open_image(path, "image", MAX_PIXELS) as im:  # the declared size is checked before decoding
            im.load()
            mode = im.mode
            if mode in ("RGBA", "LA") and np.asarray(im.getchannel("A")).min() < 255:
                raise DataError(f"{path}: has transparency; the lossy codec codes grayscale or RGB only")
            if mode in ("1", "L", "LA"):
                return np.asarray(im.convert("L"))
            if mode in ("RGB", "RGBA", "P", "CMYK", "YCbCr"):
                return np.asarray(im.convert("RGB"))
            raise DataError(f"{path}: image mode {mode} is not supported (8-bit grayscale or RGB only)")
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path}: not a readable image ({e.__class__.__name__})") from None


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Atomic write: ``.npy`` → the array, anything else → PIL by suffix (PNG recommended, lossless)."""
    from PIL import Image

    path = Path(path)
    if path.suffix.lower() == ".npy":
        atomic_save(path, lambda tmp: np.save(tmp, image))
        return
    if path.suffix.lower() not in (".png", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".webp", ".jpg", ".jpeg"):
        raise DataError(f"{path}: output must be .png, .npy or another image suffix PIL writes")
    atomic_save(path, lambda tmp: Image.fromarray(image).save(tmp, format=Image.registered_extensions()[
        path.suffix.lower()], **({"lossless": True} if path.suffix.lower() == ".webp" else {})))


def compress_image_file(model_dir: str | Path, src: str | Path, dst: str | Path, quality: int = -1,
                        embed_model_path: bool = False) -> dict[str, Any]:
    """Image file → ``.vkz`` (atomic); stats: size, bpp, PSNR of the decoded image, timing."""
    src, dst = Path(src), Path(dst)
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise VaekitError(f"{dst}: refusing to overwrite the input file")
    img = read_image(src)
    codec = _as_codec(model_dir)
    t = time.perf_counter()
    q, y_hat = analyse(codec, img, quality)
    data = _pack(codec, q, y_hat, int(img.shape[0]), int(img.shape[1]), embed_model_path)
    seconds = time.perf_counter() - t
    write_atomic(dst, data)

    x_hat = synthesize(codec, q, y_hat, img.shape[0], img.shape[1])
    return {"quality": q, "lambda": codec.lambdas[q], "size": f"{img.shape[1]}x{img.shape[0]}",
            "channels": codec.cfg.channels, "raw_bytes": int(img.size), "file_bytes": len(data),
            "bpp": 8.0 * len(data) / (img.shape[0] * img.shape[1]),
            "psnr_db": psnr(img, x_hat), "seconds": seconds}


def decompress_image_file(src: str | Path, dst: str | Path, model_dir: str | Path | None = None) -> dict[str, Any]:
    """``.vkz`` → image file (atomic); ``model_dir=None`` → the folder recorded in the file (fingerprint checked)."""
    src, dst = Path(src), Path(dst)
    box = read(src)
    if box.codec != CODEC:
        raise VaekitError(f"{src}: not a lossy image file (codec {box.codec!r})")
    *_, quality, recorded = _meta_fields(box, str(src))
    if model_dir is None:
        model_dir = recorded
        if not isinstance(model_dir, str) or not model_dir:
            raise VaekitError(f"{src}: no codec folder recorded in the file (compress with --embed-model-path "
                              f"to record one); pass --model")
        if not Path(model_dir).is_dir():
            raise CheckpointError(f"{src}: the codec folder recorded in the file ({model_dir}) is not there; "
                                  f"pass --model")
    codec = load_codec(model_dir)
    t = time.perf_counter()
    img = decompress_image(box, codec, str(src))
    seconds = time.perf_counter() - t
    write_image(dst, img)
    return {"quality": int(quality), "size": f"{img.shape[1]}x{img.shape[0]}", "channels": codec.cfg.channels,
            "file_bytes": src.stat().st_size, "bpp": 8.0 * src.stat().st_size / (img.shape[0] * img.shape[1]),
            "seconds": seconds}
