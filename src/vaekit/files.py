"""Files: atomic writes, input write-protection, JSON documents and safetensors with a BLAKE2b digest.

No pickle anywhere: tensors go to safetensors, everything else to JSON. This module knows nothing of models;
the model folder and training checkpoints are built on it in :mod:`vaekit.core.checkpoint`.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load

from vaekit.errors import CheckpointError, VaekitError

_PROTECTED: set[Path] = set()
MAX_PROTECTED_FILES = 200_000
MAX_JSON_BYTES = 64 << 20  # a JSON document (config.json, detector.json, run.json …) larger than this is refused unread
MAX_TENSOR_FILE = 1 << 30  # a safetensors file larger than this is refused before it is read (1 GiB)
MAX_TENSOR_HEADER = 16 << 20  # its JSON header (names, dtypes, shapes) larger than this is refused


def protect_inputs(paths: Iterable[str | os.PathLike[str]]) -> None:
    """Refuse every later atomic write onto these existing files, or onto files that exist now under these folders
    (the user's inputs: data, model folders, masks); new files may still be written into the folders."""
    for p in paths:
        p = Path(p)
        if p.is_file():
            _PROTECTED.add(p.resolve())
        elif p.is_dir():
            for i, f in enumerate(p.rglob("*")):
                if i >= MAX_PROTECTED_FILES:
                    break
                if f.is_file():
                    _PROTECTED.add(f.resolve())


def release_inputs() -> None:
    """Forget the protected inputs (end of a CLI command)."""
    _PROTECTED.clear()


def check_target(path: str | os.PathLike[str]) -> None:
    """An output path must not be an existing folder, nor one of the protected inputs (see :func:`protect_inputs`)."""
    p = Path(path)
    if p.is_dir():
        raise VaekitError(f"{p}: is a folder; give a file name for this output")
    if _PROTECTED and p.resolve() in _PROTECTED:
        raise VaekitError(f"{p}: refusing to overwrite an input of this command; choose another output path")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to a temp file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save(path: str | os.PathLike[str], writer: Callable[[str], None]) -> None:
    """Atomic write for libraries that want a filename (matplotlib, PIL): ``writer(tmp_path)`` then rename."""
    path = Path(path)
    check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path``; missing file, bad JSON or a non-object → one-line CheckpointError naming ``what``."""
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} not found")
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise CheckpointError(f"{path}: {what} is {size} bytes, more than the {MAX_JSON_BYTES} a JSON file may have")
    data = parse_json(path.read_bytes(), f"{path}: {what}")
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: {what} must be a JSON object")
    return data


def parse_json(raw: bytes, what: str) -> Any:
    """JSON from untrusted bytes; bad UTF-8/JSON, an integer of > 4300 digits or too deep nesting → one-line
    CheckpointError naming ``what``."""
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise CheckpointError(f"{what} is not valid JSON (nested too deeply)") from None
    except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError, and ValueError for over-long integers
        msg = str(e).splitlines()[0][:200] if str(e) else ""
        raise CheckpointError(f"{what} is not valid JSON ({e.__class__.__name__}: {msg})") from None


def read_versioned_json(path: Path, fmt: str, version: int, what: str) -> dict[str, Any]:
    """:func:`read_json` whose ``format``/``version`` fields must equal ``fmt``/``version``."""
    doc = read_json(path, what)
    if doc.get("format") != fmt or doc.get("version") != version:
        raise CheckpointError(f"{path}: not a vaekit {what} of format version {version}")
    return doc


def weights_digest(raw: bytes) -> str:
    """BLAKE2b-128 (hex) of a weights file, recorded in config.json so that a damaged file is caught at load."""
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def _tensor_header(path: Path, what: str, max_values: int | None) -> dict[str, Any]:
    """The JSON header of a safetensors file, read alone: the file size is checked against MAX_TENSOR_FILE (and
    ``max_values`` 8-byte values + header) and the header's value count against ``max_values`` before the data
    is read, so a hostile file is refused without being loaded."""
    size = path.stat().st_size
    limit = MAX_TENSOR_FILE if max_values is None else min(MAX_TENSOR_FILE, 8 + MAX_TENSOR_HEADER + 8 * max_values)
    if size > limit:
        raise CheckpointError(f"{path}: {what} file is {size} bytes, more than the {limit} "
                              f"{'allowed' if max_values is None else 'that the model config can need'}")
    with path.open("rb") as f:
        head = f.read(8)
        header_len = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 <= header_len <= min(size - 8, MAX_TENSOR_HEADER):
            raise CheckpointError(f"{path}: {what} is truncated or not a safetensors file")
        raw = f.read(header_len)
    header = parse_json(raw, f"{path}: {what} header")
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: {what} has a corrupt header (not a JSON object)")
    if max_values is not None:
        try:
            n = sum(math.prod(int(s) for s in v["shape"]) for k, v in header.items() if k != "__metadata__")
        except (KeyError, TypeError, ValueError, OverflowError):
            raise CheckpointError(f"{path}: {what} has a corrupt header (bad tensor shapes)") from None
        if n > max_values:
            raise CheckpointError(f"{path}: {what} hold {n} values, more than the {max_values} of the model "
                                  "config.json describes")
    return header


def read_tensors(path: Path, what: str, digest: object = None,
                 max_values: int | None = None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file; when ``digest`` is a string (a config.json's recorded
    ``weights_blake2b``; older folders have none), the file's BLAKE2b-128 must equal it. The header is read and
    checked first (:func:`_tensor_header`; ``max_values`` bounds the values it may declare)."""
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} not found")
    header = _tensor_header(path, what, max_values)
    raw = path.read_bytes()
    try:
        tensors = st_load(raw)
    except (SafetensorError, ValueError, RuntimeError, OSError) as e:
        raise CheckpointError(f"{path}: {what} is corrupt or not a safetensors file ({e})") from None
    meta = header.get("__metadata__", {}) or {}
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: {what} has a corrupt header (metadata is not an object)")
    if isinstance(digest, str) and weights_digest(raw) != digest:  # a well-formed file whose bytes changed
        raise CheckpointError(f"{path}: {what} do not match the checksum recorded in config.json "
                              "(the file is damaged or was replaced)")
    return tensors, meta


def check_state_dict(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise a CheckpointError naming the first missing, unexpected or mis-shaped tensor."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing:
        raise CheckpointError(f"{source}: missing tensor(s) {missing[:3]}{' …' if len(missing) > 3 else ''}")
    if unexpected:
        raise CheckpointError(f"{source}: unexpected tensor(s) {unexpected[:3]}"
                              f"{' …' if len(unexpected) > 3 else ''} (a model of another architecture?)")
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{source}: tensor {k!r} has shape {tuple(state[k].shape)}, "
                                  f"the config expects {tuple(v.shape)}")
        if not torch.isfinite(state[k].float()).all():
            raise CheckpointError(f"{source}: tensor {k!r} holds NaN or inf")














