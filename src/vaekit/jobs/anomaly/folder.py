"""The detector folder (every file written atomically, no pickle)::
    detector.json             format, version, parameters (not device/n_threads), threshold, seeds, column names;
                              files_blake2b (the digest of every other file below that it relies on, each member's
                              config.json included) and config_blake2b over itself: written last, checked first
    schema.json               the TabularSchema with its fitted transforms (mixed likelihood)
    train_scores.safetensors  decision_scores_, feature_baseline_ and feature_worst_
    member_0/ …               one vaekit model folder (config.json + model.safetensors) per ensemble member
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import save as st_save
from sklearn.utils.validation import check_is_fitted

from vaekit.core.checkpoint import load_model, save_model
from vaekit.data.tabular import TabularSchema
from vaekit.errors import CheckpointError, VaekitError
from vaekit.files import (
    atomic_write_bytes,
    check_file_seals,
    portable_params,
    read_sealed_document,
    read_tensors,
    write_sealed_document,
)

CLI_FILE = "cli.json"  # `vaekit anomaly fit`'s settings (columns to ignore), written before detector.json
FORMAT, VERSION = "vaekit-anomaly", 2  # 2: files_blake2b + config_blake2b in detector.json
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
    params = portable_params(det.get_params())
    names = getattr(det, "feature_names_in_", None)
    doc = {"format": FORMAT, "version": VERSION, "params": params, "threshold": det.threshold_,
           "seeds": det._seeds, "input": det._input, "columns": det.columns_, "n_features_in": det.n_features_in_,
           "feature_names_in": None if names is None else [str(n) for n in names], "members": members,
           "n_train": int(len(det.decision_scores_)), "train_outlier_fraction": float(det.labels_.mean())}
    sealed = _sealed_files(det.schema_ is not None, members) + [CLI_FILE] * (d / CLI_FILE).is_file()
    write_sealed_document(d, DETECTOR_FILE, doc, sealed)
    return d


def _sealed_files(mixed: bool, members: list[str]) -> list[str]:
    """The files detector.json vouches for (relative names): schema, training scores, each member's config.json
    (which vouches for its weights)."""
    return [SCHEMA_FILE] * mixed + [SCORES_FILE] + [f"{m}/config.json" for m in members]


def _member_dir(d: Path, member: Any, source: Path) -> Path:
    """A member folder named in detector.json: a plain name of a sub-folder of the detector folder, never a path
    that leads outside it (absolute, ``..``, a symlink elsewhere); vaekit names them member_0, member_1 …."""
    if not isinstance(member, str) or re.fullmatch(r"member_[0-9]{1,4}", member) is None:
        raise CheckpointError(f"{source}: member {str(member)[:60]!r} is not a folder name inside the detector "
                              "(member_0, member_1 …)")
    p = d / member
    if p.resolve().parent != d.resolve():
        raise CheckpointError(f"{source}: member {member!r} points outside the detector folder")
    return p


def load_detector(directory: str | os.PathLike[str], cls: type) -> Any:
    """Read a detector folder into a new ``cls`` instance (checked: format, version, members, scores)."""
    d = Path(directory)
    path = d / DETECTOR_FILE
    doc = read_sealed_document(d, DETECTOR_FILE, FORMAT, VERSION, "anomaly detector")
    try:
        params = dict(doc["params"])
        params["hidden"] = tuple(params["hidden"])
        params.setdefault("obs_logvar_max", None)  # folders written before the parameter: None = the ceiling 5 they had
        det = cls(**params)
        det._seeds, det._input = [int(s) for s in doc["seeds"]], str(doc["input"])
        det.threshold_, det.columns_ = float(doc["threshold"]), list(doc["columns"])
        det.n_features_in_ = int(doc["n_features_in"])
        if doc.get("feature_names_in") is not None:
            if not isinstance(doc["feature_names_in"], list):
                raise TypeError(f"feature_names_in must be a list, got {type(doc['feature_names_in']).__name__}")
            det.feature_names_in_ = np.asarray(doc["feature_names_in"], dtype=object)
        members = list(doc["members"])
        det._check_params()
    except (KeyError, TypeError, ValueError, OverflowError) as e:  # VaekitError (a bad parameter) included
        raise CheckpointError(f"{path}: malformed detector file ({e.__class__.__name__}: {e})") from None
    if len(members) != len(det._seeds) or not 1 <= len(members) <= MAX_MEMBERS:
        raise CheckpointError(f"{path}: {len(members)} member model(s) but {len(det._seeds)} seed(s) "
                              f"(1..{MAX_MEMBERS} members allowed)")
    dirs = [_member_dir(d, m, path) for m in members]
    listed = doc.get("files_blake2b") if isinstance(doc.get("files_blake2b"), dict) else {}
    cli = CLI_FILE in listed or (d / CLI_FILE).exists()  # the CLI's settings file, when there is one, is sealed too
    check_file_seals(doc, d, _sealed_files(bool(det._mixed), members) + [CLI_FILE] * cli, path)
    det.schema_ = TabularSchema.load_part(d / SCHEMA_FILE) if det._mixed else None
    det.models_ = [load_model(m)[0].double() for m in dirs]
    try:
        t, _ = read_tensors(d / SCORES_FILE, "training scores")  # size-checked before it is read
        det.decision_scores_ = t["decision_scores"].numpy()
        det.feature_baseline_ = t["feature_baseline"].numpy()
        if "feature_worst" in t:  # absent in folders written before unknown_category='abnormal'
            det.feature_worst_ = t["feature_worst"].numpy()
    except (OSError, SafetensorError, KeyError, TypeError) as e:
        raise CheckpointError(f"{d / SCORES_FILE}: missing or corrupt ({e})") from None
    _check_consistent(det, d, members, path)
    det.labels_ = (det.decision_scores_ > det.threshold_).astype(int)
    return det


def _check_consistent(det: Any, d: Path, members: list[str], path: Path) -> None:
    """The parts of a folder must agree (a re-sealed forgery could make them disagree): each member is the model
    that detector.json's parameters and schema.json describe, the column names are the schema's, and the training
    scores are finite float arrays of the right shapes; else a one-line CheckpointError here, not a crash later."""
    width = det.schema_.input_dim if det.schema_ is not None else det.n_features_in_
    try:
        expected = det._model_config(torch.zeros(0, width))
    except (VaekitError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: its parameters do not describe a valid model ({e})") from None
    for model, member in zip(det.models_, members):
        if model.config != expected:
            raise CheckpointError(f"{d / member}: the member model does not match {DETECTOR_FILE} and "
                                  f"{SCHEMA_FILE} (another detector's member?)")
    names = det.schema_.names if det.schema_ is not None else [f"x{j}" for j in range(det.n_features_in_)]
    if det.columns_ != names or (det.schema_ is not None and det.n_features_in_ != len(names)):
        raise CheckpointError(f"{path}: columns / n_features_in do not match {SCHEMA_FILE}")
    given = getattr(det, "feature_names_in_", None)
    if given is not None and (len(given) != det.n_features_in_ or not all(isinstance(n, str) for n in given)
                              or (det.schema_ is not None and sorted(given) != sorted(names))):
        raise CheckpointError(f"{path}: feature_names_in does not match the detector's columns")
    arrays = {"decision_scores": (det.decision_scores_, (len(det.decision_scores_),)),
              "feature_baseline": (det.feature_baseline_, (len(names),))}
    if getattr(det, "feature_worst_", None) is not None:
        arrays["feature_worst"] = (det.feature_worst_, (len(names),))
    for name, (a, shape) in arrays.items():
        if a.dtype.kind != "f" or a.shape != shape or not np.isfinite(a).all() or (name == "decision_scores"
                                                                                    and a.size == 0):
            raise CheckpointError(f"{d / SCORES_FILE}: {name} must be {shape[0]} finite float value(s), got "
                                  f"shape {a.shape} of {a.dtype}")
