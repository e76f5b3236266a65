"""The detector folder (every file written atomically, no pickle)::
    detector.json             format, version, parameters (not device/n_threads), threshold, seeds, column names
    schema.json               the TabularSchema with its fitted transforms (mixed likelihood)
    train_scores.safetensors  decision_scores_, feature_baseline_ and feature_worst_
    member_0/ …               one vaekit model folder (config.json + model.safetensors) per ensemble member
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import save as st_save
from sklearn.utils.validation import check_is_fitted

from vaekit.core.checkpoint import load_model, save_model
from vaekit.data.tabular import TabularSchema
from vaekit.errors import CheckpointError, DataError
from vaekit.files import atomic_write_bytes, atomic_write_text, read_tensors, read_versioned_json

FORMAT, VERSION = "vaekit-anomaly", 1
DETECTOR_FILE, SCHEMA_FILE, SCORES_FILE = "detector.json", "schema.json", "train_scores.safetensors"
MAX_MEMBERS = 100  # ensemble members one detector folder may list


def save_detector(det: Any, directory: str | os.PathLike[str]) -> Path:
    """Write a fitted detector's folder (members, schema, training scores; detector.json last)."""
    check_is_fitted(det, "models_")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    members = []
    for i, (model, seed) in enumerate(zip(det.models_, det._seeds)):
        save_model(model, d / f"member_{i}", extra={"anomaly_member": i, "seed": seed})
        members.append(f"member_{i}")
    if det.schema_ is not None:
        det.schema_.save(d / SCHEMA_FILE)
    atomic_write_bytes(d / SCORES_FILE, st_save({
        "decision_scores": torch.from_numpy(np.ascontiguousarray(det.decision_scores_)),
        "feature_baseline": torch.from_numpy(np.ascontiguousarray(det.feature_baseline_)),
        **({"feature_worst": torch.from_numpy(np.ascontiguousarray(det.feature_worst_))}
           if getattr(det, "feature_worst_", None) is not None else {})}))
    params = det.get_params()
    for runtime in ("device", "n_threads"):  # where to compute belongs to the machine, not to the model
        params.pop(runtime, None)
    params["hidden"] = [int(h) for h in params["hidden"]]
    if not isinstance(params["allow_missing"], bool):
        params["allow_missing"] = list(params["allow_missing"])
    names = getattr(det, "feature_names_in_", None)
    doc = {"format": FORMAT, "version": VERSION, "params": params, "threshold": det.threshold_,
           "seeds": det._seeds, "input": det._input, "columns": det.columns_, "n_features_in": det.n_features_in_,
           "feature_names_in": None if names is None else [str(n) for n in names], "members": members,
           "n_train": int(len(det.decision_scores_)), "train_outlier_fraction": float(det.labels_.mean())}
    atomic_write_text(d / DETECTOR_FILE, json.dumps(doc, indent=2))
    return d


def _member_dir(d: Path, member: Any, source: Path) -> Path:
    """A member folder named in detector.json: a plain name of a sub-folder of the detector folder, never a path
    that leads outside it (absolute, ``..``, a symlink elsewhere)."""
    if not isinstance(member, str) or not member or "/" in member or "\\" in member or member in (".", ".."):
        raise CheckpointError(f"{source}: member {str(member)[:60]!r} is not a folder name inside the detector")
    p = d / member
    if p.resolve().parent != d.resolve():
        raise CheckpointError(f"{source}: member {member!r} points outside the detector folder")
    return p


def load_detector(directory: str | os.PathLike[str], cls: type) -> Any:
    """Read a detector folder into a new ``cls`` instance (checked: format, version, members, scores)."""
    d = Path(directory)
    path = d / DETECTOR_FILE
    if not path.is_file():
        raise CheckpointError(f"{d}: no anomaly detector here ({DETECTOR_FILE} not found)")
    doc = read_versioned_json(path, FORMAT, VERSION, "anomaly detector")
    try:
        params = dict(doc["params"])
        params["hidden"] = tuple(params["hidden"])
        params.setdefault("missing_score", "observed")  # folders written before missing_score keep their scores
        det = cls(**params)
        det._seeds, det._input = [int(s) for s in doc["seeds"]], str(doc["input"])
        det.threshold_, det.columns_ = float(doc["threshold"]), list(doc["columns"])
        det.n_features_in_ = int(doc["n_features_in"])
        if doc.get("feature_names_in") is not None:
            det.feature_names_in_ = np.asarray(doc["feature_names_in"], dtype=object)
        members = list(doc["members"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: malformed detector file ({e.__class__.__name__}: {e})") from None
    try:
        det.schema_ = TabularSchema.load(d / SCHEMA_FILE) if det._mixed else None
    except DataError as e:
        raise CheckpointError(str(e)) from None
    if len(members) != len(det._seeds) or not 1 <= len(members) <= MAX_MEMBERS:
        raise CheckpointError(f"{path}: {len(members)} member model(s) but {len(det._seeds)} seed(s) "
                              f"(1..{MAX_MEMBERS} members allowed)")
    det.models_ = [load_model(_member_dir(d, m, path))[0].double() for m in members]
    try:
        t, _ = read_tensors(d / SCORES_FILE, "training scores")  # size-checked before it is read
        det.decision_scores_ = t["decision_scores"].numpy()
        det.feature_baseline_ = t["feature_baseline"].numpy()
        if "feature_worst" in t:  # absent in folders written before unknown_category='abnormal'
            det.feature_worst_ = t["feature_worst"].numpy()
    except (OSError, SafetensorError, KeyError) as e:
        raise CheckpointError(f"{d / SCORES_FILE}: missing or corrupt ({e})") from None
    det.labels_ = (det.decision_scores_ > det.threshold_).astype(int)
    return det
