"""The ``.vkz`` container: a versioned, checksummed wrapper around one entropy-coded payload.

Layout (all integers little-endian)::

    magic    6 bytes  b"VAEKZ\\x00"
    version  u16      FORMAT_VERSION
    hlen     u32      length of the header (≤ MAX_HEADER)
    plen     u64      length of the payload (≤ MAX_PAYLOAD)
    header   hlen     UTF-8 JSON object: {"codec": str, "fingerprint": hex str, "meta": {...}}
    payload  plen     codec-specific bytes (e.g. constriction's uint32 words)
    digest   16 bytes BLAKE2b-128 over everything before it

The reader checks magic, version, both lengths against the real file size and the digest *before* parsing the
header or handing the payload to a decoder, so a truncated or altered file fails with one
:class:`~vaekit.errors.CorruptFileError` line and nothing is allocated from untrusted sizes.
"""
from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from ..errors import CorruptFileError, VaekitError, WrongModelError
from ..io import atomic_write_bytes

MAGIC = b"VAEKZ\x00"
FORMAT_VERSION = 1
_FIXED = struct.Struct("<6sHIQ")
DIGEST_BYTES = 16
MAX_HEADER = 1 << 20
MAX_PAYLOAD = 1 << 40


@dataclass(frozen=True)
class Container:
    """A parsed .vkz file: which codec wrote it, the model's fingerprint, codec metadata and the payload."""

    codec: str
    fingerprint: bytes
    meta: dict[str, Any] = field(default_factory=dict)
    payload: bytes = b""


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=DIGEST_BYTES).digest()


def pack(codec: str, fingerprint: bytes, meta: Mapping[str, Any], payload: bytes) -> bytes:
    """Container bytes = fixed header ‖ JSON header ‖ payload ‖ BLAKE2b-128 digest."""
    if not codec or len(fingerprint) == 0:
        raise VaekitError("a container needs a codec name and a model fingerprint")
    header = json.dumps({"codec": codec, "fingerprint": fingerprint.hex(), "meta": dict(meta)},
                        sort_keys=True, separators=(",", ":")).encode("utf-8")
    if len(header) > MAX_HEADER:
        raise VaekitError(f"container header too large ({len(header)} bytes > {MAX_HEADER})")
    body = _FIXED.pack(MAGIC, FORMAT_VERSION, len(header), len(payload)) + header + bytes(payload)
    return body + _digest(body)


def unpack(data: bytes, source: str = "file") -> Container:
    """Parse and verify container bytes; any inconsistency raises one-line :class:`CorruptFileError`."""
    data = bytes(data)
    if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
        raise CorruptFileError(f"{source}: not a vaekit compressed file (bad magic bytes)")
    if len(data) < _FIXED.size + DIGEST_BYTES:
        raise CorruptFileError(f"{source}: truncated ({len(data)} bytes, shorter than the fixed header)")
    _, version, hlen, plen = _FIXED.unpack_from(data)
    if version != FORMAT_VERSION:
        raise CorruptFileError(f"{source}: format version {version} is not supported (this vaekit reads "
                               f"version {FORMAT_VERSION})")
    if hlen > MAX_HEADER or plen > MAX_PAYLOAD:
        raise CorruptFileError(f"{source}: corrupt header (declared lengths {hlen}/{plen} are out of range)")
    expected = _FIXED.size + hlen + plen + DIGEST_BYTES
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "has trailing bytes"
        raise CorruptFileError(f"{source}: {kind} ({len(data)} bytes, header declares {expected})")
    body, digest = data[:-DIGEST_BYTES], data[-DIGEST_BYTES:]
    if _digest(body) != digest:
        raise CorruptFileError(f"{source}: checksum mismatch (the file is corrupt)")
    try:
        doc = json.loads(body[_FIXED.size:_FIXED.size + hlen].decode("utf-8"))
        codec, fp, meta = doc["codec"], bytes.fromhex(doc["fingerprint"]), doc["meta"]
        if not isinstance(codec, str) or not isinstance(meta, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise CorruptFileError(f"{source}: corrupt header (not the expected JSON object)") from None
    return Container(codec, fp, meta, body[_FIXED.size + hlen:])


def read(path: str | Path) -> Container:
    """Read and verify a .vkz file (size-checked before reading)."""
    p = Path(path)
    if not p.is_file():
        raise CorruptFileError(f"{p}: file not found")
    if p.stat().st_size > MAX_PAYLOAD + MAX_HEADER:
        raise CorruptFileError(f"{p}: too large to be a vaekit compressed file")
    return unpack(p.read_bytes(), str(p))


def write_atomic(path: str | Path, data: bytes) -> None:
    """Atomic write (temp file + rename); refuses to replace the file being compressed."""
    atomic_write_bytes(path, data)


def fingerprint(model: torch.nn.Module, config: Mapping[str, Any]) -> bytes:
    """BLAKE2b-128 of the canonical config JSON and every tensor of the state dict (name, dtype, shape, bytes)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(dict(config), sort_keys=True, separators=(",", ":"), default=str).encode("utf-8"))
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode("utf-8"))
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.digest()


def check_model(container: Container, expected: bytes, codec: str | tuple[str, ...], source: str = "file") -> None:
    """Refuse a file made by another codec or another model (fingerprints differ)."""
    codecs = (codec,) if isinstance(codec, str) else codec
    if container.codec not in codecs:
        raise WrongModelError(f"{source}: made by codec {container.codec!r}, expected {' or '.join(codecs)}")
    if container.fingerprint != expected:
        raise WrongModelError(f"{source}: made with a different model (fingerprint {container.fingerprint.hex()[:12]}… "
                              f"≠ {expected.hex()[:12]}…); decode it with the model that encoded it")
