"""Files: atomic writes, the model folder (config.json + model.safetensors) and training checkpoints.

No pickle anywhere: tensors go to safetensors, everything else to JSON (in the safetensors metadata for
checkpoints, so a checkpoint is one file replaced atomically).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .config import ModelConfig
from .errors import CheckpointError, VaekitError

FORMAT = "vaekit-model"
FORMAT_VERSION = 1
CHECKPOINT_FORMAT = "vaekit-checkpoint"
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


_PROTECTED: set[Path] = set()
MAX_PROTECTED_FILES = 200_000


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
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: {what} is not valid JSON ({e.__class__.__name__}: {e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: {what} must be a JSON object")
    return data


def read_versioned_json(path: Path, fmt: str, version: int, what: str) -> dict[str, Any]:
    """:func:`read_json` whose ``format``/``version`` fields must equal ``fmt``/``version``."""
    doc = read_json(path, what)
    if doc.get("format") != fmt or doc.get("version") != version:
        raise CheckpointError(f"{path}: not a vaekit {what} of format version {version}")
    return doc


def weights_digest(raw: bytes) -> str:
    """BLAKE2b-128 (hex) of a weights file, recorded in config.json so that a damaged file is caught at load."""
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def read_tensors(path: Path, what: str, digest: object = None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file; when ``digest`` is a string (a config.json's recorded
    ``weights_blake2b``; older folders have none), the file's BLAKE2b-128 must equal it."""
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} not found")
    raw = path.read_bytes()
    if len(raw) < 8 or int.from_bytes(raw[:8], "little") > len(raw) - 8:
        raise CheckpointError(f"{path}: {what} is truncated or not a safetensors file")
    try:
        tensors = st_load(raw)
    except (SafetensorError, ValueError, RuntimeError, OSError) as e:
        raise CheckpointError(f"{path}: {what} is corrupt or not a safetensors file ({e})") from None
    header_len = int.from_bytes(raw[:8], "little")
    try:
        meta = json.loads(raw[8:8 + header_len]).get("__metadata__", {}) or {}
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: {what} has a corrupt header ({e})") from None
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


def save_model(model: torch.nn.Module, directory: str | os.PathLike[str],
               extra: dict[str, Any] | None = None) -> Path:
    """Write ``config.json`` (format, version, model config, extra) and ``model.safetensors``, each atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    raw = st_save(state, metadata={"format": FORMAT})
    atomic_write_bytes(directory / WEIGHTS_FILE, raw)
    doc = {"format": FORMAT, "version": FORMAT_VERSION, "model": model.config.to_dict(), "extra": extra or {},
           "weights_blake2b": weights_digest(raw)}
    atomic_write_text(directory / CONFIG_FILE, json.dumps(doc, indent=2, sort_keys=True))
    return directory


def read_model_config(directory: str | os.PathLike[str]) -> tuple[ModelConfig, dict[str, Any]]:
    """(model config, the whole config.json document) of a model folder; format and version checked."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: model folder not found")
    doc = read_json(directory / CONFIG_FILE, "model config")
    if doc.get("format") != FORMAT:
        raise CheckpointError(f"{directory / CONFIG_FILE}: not a vaekit model (format {doc.get('format')!r})")
    if doc.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{directory / CONFIG_FILE}: format version {doc.get('version')!r} is not supported "
                              f"(this vaekit reads version {FORMAT_VERSION})")
    try:
        cfg = ModelConfig.from_dict(doc.get("model", {}))
    except (TypeError, VaekitError) as e:
        raise CheckpointError(f"{directory / CONFIG_FILE}: invalid model config ({e})") from None
    return cfg, doc


def load_model(directory: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """Read a model folder → (VAE in eval mode, extra dict). Checks format version, keys and shapes first."""
    from .model import VAE

    directory = Path(directory)
    cfg, doc = read_model_config(directory)
    state, _ = read_tensors(directory / WEIGHTS_FILE, "model weights", doc.get("weights_blake2b"))
    model = VAE(cfg)
    check_state_dict(model, state, str(directory / WEIGHTS_FILE))
    model.load_state_dict(state)
    model.eval()
    return model, doc.get("extra", {})


# --- checkpoints --------------------------------------------------------------------------------
def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in state["state"].items():
        for name, value in pstate.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for pid, d in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(d)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(path: str | os.PathLike[str], *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    """One safetensors file: model.*, optim.*, extra tensors (RNG states, best weights); JSON info in metadata."""
    out = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    out.update(opt_tensors)
    out.update({f"extra.{k}": v.detach().cpu().contiguous() for k, v in tensors.items()})
    meta = {"format": CHECKPOINT_FORMAT, "version": str(FORMAT_VERSION),
            "info": json.dumps(info), "optimizer": json.dumps(opt_meta),
            "scheduler": json.dumps(scheduler.state_dict() if scheduler is not None else None)}
    atomic_write_bytes(path, st_save(out, metadata=meta))


def load_checkpoint(path: str | os.PathLike[str], *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Restore model/optimizer/scheduler in place; return (extra tensors, info)."""
    path = Path(path)
    tensors, meta = read_tensors(path, "checkpoint")
    if meta.get("format") != CHECKPOINT_FORMAT or meta.get("version") != str(FORMAT_VERSION):
        raise CheckpointError(f"{path}: not a vaekit checkpoint of format version {FORMAT_VERSION}")
    try:
        info = json.loads(meta["info"])
        opt_meta = json.loads(meta["optimizer"])
        sched = json.loads(meta["scheduler"])
    except (KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: checkpoint metadata is corrupt ({e})") from None
    model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    check_state_dict(model, model_state, str(path))
    model.load_state_dict(model_state)
    try:
        optimizer.load_state_dict(_unflatten_optimizer(tensors, opt_meta))
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{path}: optimizer state does not fit this model/optimizer ({e})") from None
    if scheduler is not None and sched is not None:
        scheduler.load_state_dict(sched)
    extra = {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")}
    return extra, info
