"""The model folder (config.json + model.safetensors) and training checkpoints (one safetensors file each).

Loading checks the format version, the BLAKE2b digest, the keys and the shapes before any weight is used.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as st_save

from vaekit.core.config import ModelConfig, parameter_estimate
from vaekit.core.model import VAE
from vaekit.errors import CheckpointError, VaekitError
from vaekit.files import (
    atomic_write_bytes,
    atomic_write_text,
    check_state_dict,
    document_digest,
    is_digest,
    read_json,
    read_tensors,
    tensors_digest,
    weights_digest,
)

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
FORMAT = "vaekit-model"
FORMAT_VERSION = 2  # 2: config.json carries config_blake2b over the whole document (1: weights digest only)
READ_VERSIONS = (1, 2)
CHECKPOINT_FORMAT = "vaekit-checkpoint"
CHECKPOINT_VERSION = 2  # 2: a BLAKE2b digest of every tensor and the metadata, in the metadata


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
    doc = json.loads(json.dumps(doc))  # the JSON form (tuples → lists) is what the digest covers
    doc["config_blake2b"] = document_digest(doc, "config_blake2b")
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
    if doc.get("version") not in READ_VERSIONS:
        raise CheckpointError(f"{directory / CONFIG_FILE}: format version {doc.get('version')!r} is not supported "
                              f"(this vaekit reads versions {', '.join(map(str, READ_VERSIONS))})")
    try:
        bad = _non_finite(doc)
    except RecursionError:
        raise CheckpointError(f"{directory / CONFIG_FILE}: nested too deeply to be a model config") from None
    if bad is not None:
        raise CheckpointError(f"{directory / CONFIG_FILE}: {bad} is NaN or infinite")
    if not is_digest(doc.get("weights_blake2b")):
        raise CheckpointError(f"{directory / CONFIG_FILE}: the weights checksum (weights_blake2b) is missing or "
                              "malformed; the folder cannot be verified")
    if doc["version"] >= 2:
        recorded = doc.get("config_blake2b")
        if not is_digest(recorded):
            raise CheckpointError(f"{directory / CONFIG_FILE}: the config checksum (config_blake2b) is missing or "
                                  "malformed; the folder cannot be verified")
        try:
            actual = document_digest(doc, "config_blake2b")
        except (ValueError, RecursionError):
            actual = ""
        if actual != recorded:
            raise CheckpointError(f"{directory / CONFIG_FILE}: does not match its checksum (config_blake2b): the "
                                  "file was edited or damaged")
    extra = doc.get("extra", {})
    if not isinstance(extra, dict) or not isinstance(extra.get("data", {}), dict) \
            or not isinstance(extra.get("data", {}).get("seed", 0), int):
        raise CheckpointError(f"{directory / CONFIG_FILE}: malformed 'extra' section")
    try:
        cfg = ModelConfig.from_dict(doc.get("model", {}))
    except (TypeError, VaekitError) as e:
        raise CheckpointError(f"{directory / CONFIG_FILE}: invalid model config ({e})") from None
    return cfg, doc


def _non_finite(value: Any, where: str = "config") -> str | None:
    """The key path of the first NaN/inf number in a parsed JSON document, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        found = _non_finite(v, f"{where}.{k}" if isinstance(value, dict) else f"{where}[{k}]")
        if found is not None:
            return found
    return None


def weights_bound(cfg: ModelConfig) -> int:
    """The most values a weights file of this config may declare: the parameter estimate plus a free
    per-column variance (≤ the data width) and a little slack for buffers."""
    return parameter_estimate(cfg)[0] + cfg.data_dim + 4096


def load_model(directory: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """Read a model folder → (VAE in eval mode, extra dict). Checks format version, keys and shapes first."""

    directory = Path(directory)
    cfg, doc = read_model_config(directory)
    state, _ = read_tensors(directory / WEIGHTS_FILE, "model weights", doc.get("weights_blake2b"),
                            max_values=weights_bound(cfg))
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
    meta = {"format": CHECKPOINT_FORMAT, "version": str(CHECKPOINT_VERSION),
            "info": json.dumps(info), "optimizer": json.dumps(opt_meta),
            "scheduler": json.dumps(scheduler.state_dict() if scheduler is not None else None)}
    meta["digest"] = tensors_digest(out, meta)
    atomic_write_bytes(path, st_save(out, metadata=meta))


def load_checkpoint(path: str | os.PathLike[str], *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Restore model/optimizer/scheduler in place; return (extra tensors, info)."""
    path = Path(path)
    # model, two Adam moments and the best weights, plus room for RNG states and the data order
    n_model = sum(t.numel() for t in model.state_dict().values())
    tensors, meta = read_tensors(path, "checkpoint", max_values=4 * n_model + (32 << 20))
    if meta.get("format") != CHECKPOINT_FORMAT or meta.get("version") != str(CHECKPOINT_VERSION):
        raise CheckpointError(f"{path}: not a vaekit checkpoint of format version {CHECKPOINT_VERSION} "
                              "(a run from an older vaekit cannot be resumed; start a new one)")
    if not is_digest(meta.get("digest")) or tensors_digest(tensors, meta) != meta["digest"]:
        raise CheckpointError(f"{path}: checkpoint does not match its checksum (damaged, or its checksum is missing)")
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
