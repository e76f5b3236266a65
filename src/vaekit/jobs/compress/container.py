"""The ``.vkz`` container: a versioned, checksummed wrapper around one entropy-coded payload.

Version 2 (written; compact, so a 28×28 image does not pay for its header — 27 bytes + meta when the
payload is under 128 bytes, one more up to 16 KiB)::
    magic    6 bytes  b"VAEKZ\\x00"
    version  u16      2 (little-endian)
    codec    u8       registered codec id (CODEC_IDS); 255 → u8 length + UTF-8 name follow
    fp       8 bytes  model fingerprint (first 8 bytes of BLAKE2b-128 over config + weights)
    mlen     LEB128   length of the meta (≤ MAX_HEADER)
    plen     LEB128   length of the payload (≤ MAX_PAYLOAD)
    meta     mlen     compact UTF-8 JSON object or array (codec-specific: shapes, quality, …)
    payload  plen     codec-specific bytes (e.g. constriction's uint32 words)
    digest   8 bytes  BLAKE2b-64 over everything before it

Version 3: the layout of version 2; bits-back files of the lane coder are written as version 3, so an older vaekit
refuses them with one line instead of misreading the payload (a version-2 bits-back file is refused by this one).

Version 1 (still read): magic, u16 version, u32 hlen, u64 plen, JSON header {"codec", "fingerprint" (hex),
"meta"}, payload, BLAKE2b-128 digest.

The reader checks magic, version, both lengths against the real file size and the digest *before* parsing the
meta or handing the payload to a decoder, so a truncated or altered file fails with one
:class:`~vaekit.errors.CorruptFileError` line and nothing is allocated from untrusted sizes.
"""
from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Union

from vaekit.errors import CorruptFileError, VaekitError, WrongModelError
from vaekit.files import atomic_write_bytes

if TYPE_CHECKING:  # imported by fingerprint(): the package (and so the CLI's --help) loads this module without PyTorch
    import torch

MAGIC = b"VAEKZ\x00"
FORMAT_VERSION = 2
READ_VERSIONS = (1, 2, 3)
CODEC_IDS = {"bitsback": 1, "vaekit-lossy-image": 2}
_NAMED = 255
FP_BYTES = 8
MAX_HEADER = 1 << 20
MAX_PAYLOAD = 1 << 40
MAX_FILE = 256 << 20  # read(): a larger file is refused before it is read (parsing holds ~3 copies in memory)
_V1_FIXED = struct.Struct("<6sHIQ")
_V1_DIGEST = 16
_V2_DIGEST = 8
DIGEST_BYTES = _V2_DIGEST  # of the version that is written

Meta = Union[dict, list]


@dataclass(frozen=True)
class Container:
    """A parsed .vkz file: which codec wrote it, the model's fingerprint, codec metadata and the payload."""

    codec: str
    fingerprint: bytes
    meta: Any = field(default_factory=dict)
    payload: bytes = b""
    version: int = FORMAT_VERSION


def _digest(data: bytes, size: int = DIGEST_BYTES) -> bytes:
    return hashlib.blake2b(data, digest_size=size).digest()


def _leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_leb128(data: bytes, pos: int, limit: int, what: str, source: str) -> tuple[int, int]:
    """Varint at ``pos`` → (value, next pos); at most 6 bytes and ≤ ``limit``, else CorruptFileError."""
    value = 0
    for i in range(6):
        if pos + i >= len(data):
            raise CorruptFileError(f"{source}: truncated (header ends inside the {what} length)")
        b = data[pos + i]
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            if value > limit:
                raise CorruptFileError(f"{source}: corrupt header (declared {what} length {value} is out of range)")
            return value, pos + i + 1
    raise CorruptFileError(f"{source}: corrupt header ({what} length is not a valid varint)")


def _json(meta: Meta) -> bytes:
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def pack(codec: str, fingerprint: bytes, meta: Meta, payload: bytes, version: int = FORMAT_VERSION) -> bytes:
    """Container bytes (version 2 or 3: compact binary header ‖ JSON meta ‖ payload ‖ BLAKE2b-64 digest)."""
    if not codec or len(fingerprint) < FP_BYTES:
        raise VaekitError(f"a container needs a codec name and a model fingerprint of ≥ {FP_BYTES} bytes")
    if not isinstance(meta, (dict, list)):
        raise VaekitError(f"container meta must be a JSON object or array, got {type(meta).__name__}")
    if version == 1:
        header = json.dumps({"codec": codec, "fingerprint": fingerprint.hex(), "meta": meta},
                            sort_keys=True, separators=(",", ":")).encode("utf-8")
        body = _V1_FIXED.pack(MAGIC, 1, len(header), len(payload)) + header + bytes(payload)
        return body + _digest(body, _V1_DIGEST)
    if version not in (2, 3):
        raise VaekitError(f"cannot write container version {version} (this vaekit writes 1, 2 or 3)")
    m = _json(meta)
    if len(m) > MAX_HEADER:
        raise VaekitError(f"container meta too large ({len(m)} bytes > {MAX_HEADER})")
    if codec in CODEC_IDS:
        tag = bytes([CODEC_IDS[codec]])
    else:
        name = codec.encode("utf-8")
        if len(name) > 255:
            raise VaekitError(f"codec name too long ({len(name)} bytes > 255)")
        tag = bytes([_NAMED, len(name)]) + name
    body = (MAGIC + struct.pack("<H", version) + tag + bytes(fingerprint[:FP_BYTES]) + _leb128(len(m))
            + _leb128(len(payload)) + m + bytes(payload))
    return body + _digest(body, _V2_DIGEST)


def _check_total(data: bytes, expected: int, source: str) -> None:
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "has trailing bytes"
        raise CorruptFileError(f"{source}: {kind} ({len(data)} bytes, header declares {expected})")


def _parse_meta(raw: bytes, source: str) -> Meta:
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise CorruptFileError(f"{source}: corrupt header (meta is not valid JSON)") from None
    if not isinstance(meta, (dict, list)):
        raise CorruptFileError(f"{source}: corrupt header (meta is not a JSON object or array)")
    return meta


def _unpack_v1(data: bytes, source: str) -> Container:
    if len(data) < _V1_FIXED.size + _V1_DIGEST:
        raise CorruptFileError(f"{source}: truncated ({len(data)} bytes, shorter than the fixed header)")
    _, _, hlen, plen = _V1_FIXED.unpack_from(data)
    if hlen > MAX_HEADER or plen > MAX_PAYLOAD:
        raise CorruptFileError(f"{source}: corrupt header (declared lengths {hlen}/{plen} are out of range)")
    _check_total(data, _V1_FIXED.size + hlen + plen + _V1_DIGEST, source)
    body = data[:-_V1_DIGEST]
    if _digest(body, _V1_DIGEST) != data[-_V1_DIGEST:]:
        raise CorruptFileError(f"{source}: checksum mismatch (the file is corrupt)")
    doc = _parse_meta(body[_V1_FIXED.size:_V1_FIXED.size + hlen], source)
    try:
        codec, fp, meta = doc["codec"], bytes.fromhex(doc["fingerprint"]), doc["meta"]
        if not isinstance(codec, str) or not isinstance(meta, (dict, list)) or len(fp) < FP_BYTES:
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise CorruptFileError(f"{source}: corrupt header (not the expected JSON object)") from None
    return Container(codec, fp, meta, body[_V1_FIXED.size + hlen:], 1)


def _unpack_v2(data: bytes, source: str) -> Container:
    pos = len(MAGIC) + 2
    if len(data) < pos + 1 + FP_BYTES + 2 + _V2_DIGEST:
        raise CorruptFileError(f"{source}: truncated ({len(data)} bytes, shorter than the fixed header)")
    cid = data[pos]
    pos += 1
    if cid == _NAMED:
        n = data[pos]
        raw_name, pos = data[pos + 1:pos + 1 + n], pos + 1 + n
        try:
            codec = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            codec = ""
        if len(raw_name) != n or not codec:
            raise CorruptFileError(f"{source}: corrupt header (bad codec name)")
    else:
        names = {v: k for k, v in CODEC_IDS.items()}
        if cid not in names:
            raise CorruptFileError(f"{source}: corrupt header (unknown codec id {cid})")
        codec = names[cid]
    fp, pos = data[pos:pos + FP_BYTES], pos + FP_BYTES
    mlen, pos = _read_leb128(data, pos, MAX_HEADER, "meta", source)
    plen, pos = _read_leb128(data, pos, MAX_PAYLOAD, "payload", source)
    _check_total(data, pos + mlen + plen + _V2_DIGEST, source)
    body = data[:-_V2_DIGEST]
    if _digest(body, _V2_DIGEST) != data[-_V2_DIGEST:]:
        raise CorruptFileError(f"{source}: checksum mismatch (the file is corrupt)")
    version = struct.unpack_from("<H", data, len(MAGIC))[0]
    return Container(codec, fp, _parse_meta(body[pos:pos + mlen], source), body[pos + mlen:], version)


def unpack(data: bytes, source: str = "file") -> Container:
    """Parse and verify container bytes (version 1 or 2); any inconsistency raises one-line CorruptFileError."""
    data = bytes(data)
    if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
        raise CorruptFileError(f"{source}: not a vaekit compressed file (bad magic bytes)")
    if len(data) < len(MAGIC) + 2:
        raise CorruptFileError(f"{source}: truncated ({len(data)} bytes, shorter than the fixed header)")
    (version,) = struct.unpack_from("<H", data, len(MAGIC))
    if version not in READ_VERSIONS:
        raise CorruptFileError(f"{source}: format version {version} is not supported (this vaekit reads "
                               f"versions {', '.join(map(str, READ_VERSIONS))})")
    return _unpack_v1(data, source) if version == 1 else _unpack_v2(data, source)


def read(path: str | Path) -> Container:
    """Read and verify a .vkz file: its magic bytes are read first, then its size is checked against MAX_FILE,
    and only then is the whole file read."""
    p = Path(path)
    if not p.is_file():
        raise CorruptFileError(f"{p}: file not found")
    with p.open("rb") as f:
        head = f.read(len(MAGIC))
    if head != MAGIC:
        raise CorruptFileError(f"{p}: not a vaekit compressed file (bad magic bytes)")
    size = p.stat().st_size
    if size > MAX_FILE:
        raise CorruptFileError(f"{p}: {size} bytes, more than the {MAX_FILE} a vaekit compressed file may have")
    return unpack(p.read_bytes(), str(p))


def write_atomic(path: str | Path, data: bytes) -> None:
    """Atomic write (temp file + rename); refuses to replace the file being compressed."""
    atomic_write_bytes(path, data)


def fingerprint(model: torch.nn.Module, config: Mapping[str, Any]) -> bytes:
    """BLAKE2b-128 of the canonical config JSON and every tensor of the state dict (name, dtype, shape, bytes)."""
    import torch

    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(dict(config), sort_keys=True, separators=(",", ":"), default=str).encode("utf-8"))
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode("utf-8"))
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.digest()


def check_model(container: Container, expected: bytes, codec: str | tuple[str, ...], source: str = "file") -> None:
    """Refuse a file made by another codec or another model (the stored fingerprint prefix differs)."""
    codecs = (codec,) if isinstance(codec, str) else codec
    if container.codec not in codecs:
        raise WrongModelError(f"{source}: made by codec {container.codec!r}, expected {' or '.join(codecs)}")
    fp = container.fingerprint
    if len(fp) < FP_BYTES or fp != expected[:len(fp)]:
        raise WrongModelError(f"{source}: made with a different model (fingerprint {fp.hex()[:12]}… "
                              f"≠ {expected.hex()[:12]}…); decode it with the model that encoded it")
