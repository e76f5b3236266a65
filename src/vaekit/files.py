"""Files: atomic writes, input write-protection, JSON documents and safetensors with a BLAKE2b digest.

No pickle anywhere: tensors go to safetensors, everything else to JSON. This module knows nothing of models;
the model folder and training checkpoints are built on it in :mod:`vaekit.core.checkpoint`.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from safetensors import SafetensorError

from vaekit.errors import CheckpointError, VaekitError

if TYPE_CHECKING:  # PyTorch is imported by the functions that need it: the CLI's input guard imports this module
    import torch

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


STALE_TEMP_SECONDS = 3600  # a temp file of ours older than this was left by a killed write; the next write removes it
_TEMP_TAIL = re.compile(r"[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]{1,16})?")  # after ".TARGET.": mkstemp's 8 chars, .tmp[.ext]
_TEMP_NAME = re.compile(r"\..+\." + _TEMP_TAIL.pattern)
_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS tells it (Linux /proc/self/status); elsewhere set and
    restored at once under a lock (to the restrictive 0o077 meanwhile, so nothing created then is too open)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def is_temp_name(name: str) -> bool:
    """Whether a file name has the pattern of our temp files, ``.TARGET.XXXXXXXX.tmp[.ext]``."""
    return _TEMP_NAME.fullmatch(name) is not None


def _remove_stale_temps(path: Path) -> None:
    """Delete temp files of ``path`` (``.NAME.XXXXXXXX.tmp[.ext]``) older than STALE_TEMP_SECONDS: a killed write's."""
    prefix, cutoff = f".{path.name}.", time.time() - STALE_TEMP_SECONDS
    try:
        with os.scandir(path.parent) as entries:
            for e in entries:
                if e.name.startswith(prefix) and _TEMP_TAIL.fullmatch(e.name[len(prefix):]):
                    try:
                        if e.is_file(follow_symlinks=False) and e.stat(follow_symlinks=False).st_mtime < cutoff:
                            os.unlink(e.path)
                    except OSError:
                        pass
    except OSError:
        pass


def _new_temp(path: Path, ext: str = "") -> tuple[int, str]:
    """(fd, name) of a new temp file beside ``path``, named ``.NAME.XXXXXXXX.tmp[ext]``, with the mode a new file
    gets under the umask (mkstemp's is 0600); stale temps of the same target are removed first."""
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + ext, dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    return fd, tmp


def new_temp_file(path: str | os.PathLike[str], ext: str = "") -> str:
    """An empty temp file beside ``path`` (see :func:`_new_temp`) for a writer that renames it over ``path`` itself."""
    fd, tmp = _new_temp(Path(path), ext)
    os.close(fd)
    return tmp


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to a temp file in the same folder, fsync, then rename over ``path`` (mode from the umask)."""
    path = Path(path)
    check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _new_temp(path)
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
    """Atomic write for libraries that want a filename (matplotlib, PIL): ``writer(tmp_path)`` then rename; the
    temp name keeps the target's suffix (``.NAME.XXXXXXXX.tmp.png``), which some writers need."""
    path = Path(path)
    check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = new_temp_file(path, path.suffix)
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --- output folders: fitting or training never mixes with, or silently replaces, what a folder holds -----------
KIND_FILES = {  # kind → every name it writes in its folder ("member_*": member_0, member_1 …)
    "detector": ("detector.json", "schema.json", "train_scores.safetensors", "train_scores.png", "cli.json",
                 "member_*"),
    "generator": ("generator.json", "schema.json", "condition_schema.json", "condition_table.safetensors", "model"),
    "train": ("run.json", "checkpoint.safetensors", "metrics.csv", "model", "tensorboard"),
    "codec": ("config.json", "model.safetensors"),
    "model": ("config.json", "model.safetensors", "model"),
}
KIND_NAMES = {"detector": "a detector (detector.json, from 'vaekit anomaly fit')",
              "generator": "a generator (generator.json, from 'vaekit generate fit')",
              "train": "a training run (run.json, from 'vaekit train')",
              "codec": "an image codec (config.json, from 'vaekit codec train')",
              "model": "a vaekit model ({marker})"}
OS_FILES = {".DS_Store", "Thumbs.db", "desktop.ini"}


def _json_object(path: Path) -> dict[str, Any] | None:
    """A small JSON object file's content, or None (missing, unreadable, too large, not an object)."""
    try:
        if path.is_file() and path.stat().st_size <= 1 << 20:
            doc = json.loads(path.read_bytes().decode("utf-8"))
            return doc if isinstance(doc, dict) else None
    except (OSError, ValueError, RecursionError):
        pass
    return None


def folder_artifacts(d: Path) -> dict[str, list[Path]]:
    """The vaekit artifacts in folder ``d``: kind → its marker files (without them no tool loads the artifact)."""
    found: dict[str, list[Path]] = {}
    for kind, marker in (("detector", "detector.json"), ("generator", "generator.json")):
        if str((_json_object(d / marker) or {}).get("format", "")).startswith("vaekit-"):
            found[kind] = [d / marker]
    run = _json_object(d / "run.json")
    train = [d / "run.json"] if run is not None and {"model", "train"} <= set(run) else []
    train += [d / "checkpoint.safetensors"] if (d / "checkpoint.safetensors").is_file() else []
    if train:
        found["train"] = train
    fmt = (_json_object(d / "config.json") or {}).get("format")
    if fmt in ("vaekit-codec", "vaekit-model"):
        found["codec" if fmt == "vaekit-codec" else "model"] = [d / "config.json"]
    elif "generator" not in found and "train" not in found and \
            (_json_object(d / "model" / "config.json") or {}).get("format") == "vaekit-model":
        found["model"] = [d / "model" / "config.json"]
    return found


def _owned(name: str, kinds: Iterable[str]) -> bool:
    for k in kinds:
        for pattern in KIND_FILES[k]:
            if name == pattern or (pattern.endswith("*") and name.startswith(pattern[:-1])):
                return True
    return False


def check_output_folder(path: str | os.PathLike[str], kind: str, overwrite: bool = False,
                        resume: bool = False) -> list[Path]:
    """Refuse (one-line VaekitError) to fit/train a ``kind`` artifact (detector | generator | train | codec) into a
    folder that holds a vaekit artifact (of any kind) or files vaekit did not write, unless ``overwrite``; a missing
    or empty folder is fine, and so is ``resume`` of a training run into its own folder. Returns the marker files of
    the artifacts being replaced: pass them to :func:`retire_artifacts` right before the new one is written, so that
    no tool reads a folder that mixes the old and the new artifact. Nothing is changed here."""
    d = Path(path)
    if not d.exists():
        return []
    if not d.is_dir():
        raise VaekitError(f"{d}: is a file; --out names the folder to write the {kind} into")
    found = folder_artifacts(d)
    own_run = "train" in found or (d / "run.json").is_file()  # --resume reads and checks run.json itself
    if resume and kind == "train" and own_run and not (set(found) - {"train"}):
        return []  # continuing its own run
    try:
        names = sorted(e.name for e in os.scandir(d))
    except OSError as e:
        raise VaekitError(f"{d}: cannot list the folder ({e.strerror or e})") from None
    foreign = [n for n in names if n not in OS_FILES and not is_temp_name(n) and not _owned(n, found)]
    if not overwrite and (found or foreign):
        what = [KIND_NAMES[k].format(marker=found[k][0].relative_to(d).as_posix()) for k in found]
        if foreign:
            more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            what.append(f"files vaekit did not write ({', '.join(foreign[:3])}{more})")
        hint = ", --resume to continue it" if kind == "train" and "train" in found and not resume else ""
        raise VaekitError(f"{d}: already holds {' and '.join(what)}; pass --overwrite to write over it{hint}, "
                          "or choose another --out")
    keep = {"train"} if resume and kind == "train" else set()  # --resume --overwrite: other artifacts only
    return [p for k, ps in found.items() if k not in keep for p in ps]


def retire_artifacts(markers: Iterable[Path]) -> None:
    """Delete the marker files :func:`check_output_folder` returned (the user passed --overwrite): the old
    artifacts can then no longer be loaded half-replaced; the new artifact's own files are written over."""
    for p in markers:
        try:
            p.unlink()
        except FileNotFoundError:
            pass


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


DIGEST_HEX = 32  # BLAKE2b-128 as hex


def is_digest(value: object) -> bool:
    """A well-formed BLAKE2b-128 hex digest (32 lowercase hex characters)."""
    return isinstance(value, str) and len(value) == DIGEST_HEX and all(c in "0123456789abcdef" for c in value)


def document_digest(doc: dict[str, Any], field: str) -> str:
    """BLAKE2b-128 of a JSON document's canonical form (sorted keys, compact), without its own ``field``: the
    checksum a folder's config.json records over everything it says, its weights digest included."""
    body = {k: v for k, v in doc.items() if k != field}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


# --- sealed folders: a top-level document (detector.json, generator.json) vouches for every file it relies on ------
SEAL_FIELD, FILES_FIELD = "config_blake2b", "files_blake2b"


def file_digest(path: Path) -> str:
    """BLAKE2b-128 (hex) of a file's bytes, read in 1 MiB blocks (memory stays flat); a missing file, or one larger
    than MAX_TENSOR_FILE, is a one-line CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"{path}: not found")
    size = path.stat().st_size
    if size > MAX_TENSOR_FILE:
        raise CheckpointError(f"{path}: is {size} bytes, more than the {MAX_TENSOR_FILE} a folder's file may have")
    h = hashlib.blake2b(digest_size=16)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def seal_document(doc: dict[str, Any], folder: Path, names: Iterable[str]) -> dict[str, Any]:
    """``doc`` in its JSON form plus ``files_blake2b`` {name: :func:`file_digest`} of the files ``names`` (relative
    to ``folder``, '/'-separated) and ``config_blake2b`` over all of it: write it last, after those files."""
    doc = json.loads(json.dumps({**doc, FILES_FIELD: {n: file_digest(folder / n) for n in names}}, allow_nan=False))
    doc[SEAL_FIELD] = document_digest(doc, SEAL_FIELD)
    return doc


def check_document_seal(doc: dict[str, Any], path: Path) -> None:
    """The document's ``config_blake2b`` must be present, well-formed and equal to its digest; else a one-line
    CheckpointError naming ``path``. Check it before anything the document says is used."""
    recorded = doc.get(SEAL_FIELD)
    if not is_digest(recorded):
        raise CheckpointError(f"{path}: the checksum ({SEAL_FIELD}) is missing or malformed; the folder cannot be "
                              "verified")
    try:
        actual = document_digest(doc, SEAL_FIELD)
    except (ValueError, TypeError, RecursionError):  # NaN/inf, too deep: not what vaekit writes
        actual = ""
    if actual != recorded:
        raise CheckpointError(f"{path}: does not match its checksum ({SEAL_FIELD}): the file was edited or damaged")


def write_sealed_document(folder: Path, name: str, doc: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """:func:`seal_document` over the files ``names``, written atomically to ``folder/name`` (last: after the files
    it vouches for) → the sealed document."""
    doc = seal_document(doc, folder, names)
    atomic_write_text(folder / name, json.dumps(doc, indent=2))
    return doc


RUNTIME_PARAMS = ("device", "n_threads")  # where to compute: the machine's business, never saved with a model


def portable_params(params: dict[str, Any], drop: Iterable[str] = RUNTIME_PARAMS) -> dict[str, Any]:
    """An estimator's ``get_params()`` as plain JSON values, less the settings ``drop`` (default: device and
    threads): tuples and lists → lists, mappings → dicts, numpy scalars → Python numbers; other values as
    they are."""
    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(u) for u in v]
        if isinstance(v, dict):
            return {k: plain(u) for k, u in v.items()}
        return v.item() if hasattr(v, "item") and not isinstance(v, (str, bytes)) else v

    dropped = set(drop)
    return {k: plain(v) for k, v in params.items() if k not in dropped}


def read_sealed_document(folder: Path, name: str, fmt: str, version: int, what: str) -> dict[str, Any]:
    """The top-level document ``folder/name`` of a vaekit folder: present, of ``fmt``/``version``, its seal intact."""
    path = folder / name
    if not path.is_file():
        raise CheckpointError(f"{folder}: no {what} here ({name} not found)")
    doc = read_versioned_json(path, fmt, version, what)
    check_document_seal(doc, path)
    return doc


def check_file_seals(doc: dict[str, Any], folder: Path, names: Iterable[str], path: Path) -> None:
    """The document's ``files_blake2b`` must list exactly ``names`` (the files the loader will read), each with the
    digest of that file's bytes; else a one-line CheckpointError naming the file."""
    names = list(names)
    seals = doc.get(FILES_FIELD)
    if not isinstance(seals, dict) or not all(is_digest(v) for v in seals.values()):
        raise CheckpointError(f"{path}: the file checksums ({FILES_FIELD}) are missing or malformed; the folder "
                              "cannot be verified")
    if set(seals) != set(names):
        unlisted = sorted(set(names) - set(seals)) or sorted(set(seals) - set(names))
        raise CheckpointError(f"{path}: {FILES_FIELD} does not list the folder's files ({unlisted[:3]}): the file "
                              "was edited or damaged")
    for n in names:
        if file_digest(folder / n) != seals[n]:
            raise CheckpointError(f"{folder / n}: does not match the checksum recorded in {path.name} "
                                  f"({FILES_FIELD}): the file was edited or damaged")


def tensors_digest(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> str:
    """BLAKE2b-128 over every tensor (name, dtype, shape, bytes, in sorted order) and the metadata strings:
    the checksum a training checkpoint carries in its own metadata (under ``digest``, left out here)."""
    import torch

    h = hashlib.blake2b(digest_size=16)
    for k in sorted(tensors):
        v = tensors[k].detach().cpu().contiguous()
        h.update(f"{k}|{v.dtype}|{tuple(v.shape)}|".encode())
        h.update(v.reshape(-1).view(torch.uint8).numpy().tobytes())
    for k in sorted(meta):
        if k != "digest":
            h.update(f"{k}={meta[k]}\n".encode())
    return h.hexdigest()


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
    from safetensors.torch import load as st_load

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
    import torch

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














