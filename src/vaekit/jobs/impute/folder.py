"""A fitted :class:`~vaekit.jobs.impute.imputer.VAEImputer` is a folder (every file written atomically, no pickle)::
    imputer.json   format, version, parameters (not device/n_threads), seed, input kind, column names, steps,
                   missing_model (missing_mechanism="self_masking": the learned w, b per continuous column);
                   files_blake2b (the digest of schema.json and model/config.json, which vouches for the weights)
                   and config_blake2b over itself: written last, checked first
    schema.json    the TabularSchema with its fitted transforms
    model/         a vaekit model folder (config.json + model.safetensors)

``save_imputer(imp, DIR)`` writes one (Python API; the ``vaekit impute`` command fits and imputes in one go and
keeps no folder); ``load_imputer(DIR)`` reads it back, so
that ``transform`` of the loaded imputer gives the same numbers as the fitted one (the importance draws come from the
saved seed); ``vaekit serve DIR`` serves it.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from vaekit.core.checkpoint import load_model, save_model
from vaekit.data.tabular import TabularSchema
from vaekit.errors import CheckpointError, VaekitError
from vaekit.files import (
    RUNTIME_PARAMS,
    check_file_seals,
    portable_params,
    read_sealed_document,
    write_sealed_document,
)
from vaekit.jobs.impute.imputer import VAEImputer
from vaekit.jobs.impute.notmiwae import SelfMasking

FORMAT, VERSION = "vaekit-imputer", 1
IMPUTER_FILE, SCHEMA_FILE, MODEL_DIR = "imputer.json", "schema.json", "model"
SEALED = [SCHEMA_FILE, f"{MODEL_DIR}/config.json"]


def _json_missing(value: Any) -> Any:
    """``missing_values`` as JSON: NaN (the default) is null."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (bool, int, float, str)):
        return value
    raise VaekitError(f"missing_values={value!r} cannot be saved (a number, a string or NaN)")


def save_imputer(imp: VAEImputer, directory: str | os.PathLike[str]) -> Path:
    """Write a fitted imputer's folder (model, schema; imputer.json last)."""
    check_is_fitted(imp, "model_")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    save_model(imp.model_, d / MODEL_DIR, extra={"imputer": True})
    imp.schema_.save(d / SCHEMA_FILE)
    params = portable_params(imp.get_params(), drop=(*RUNTIME_PARAMS, "verbose"))
    params["missing_values"] = _json_missing(params["missing_values"])
    names = getattr(imp, "feature_names_in_", None)
    doc = {"format": FORMAT, "version": VERSION, "params": params, "seed": int(imp._seed), "input": imp._input,
           "n_features_in": int(imp.n_features_in_),
           "feature_names_in": None if names is None else [str(n) for n in names],
           "n_steps": int(imp.n_steps_), "best_step": int(imp.best_step_)}
    if imp.missing_mechanism == "self_masking":
        doc["missing_model"] = imp.mask_model_.to_json()
    write_sealed_document(d, IMPUTER_FILE, doc, SEALED)
    return d


def load_imputer(directory: str | os.PathLike[str]) -> VAEImputer:
    """Read an imputer folder (format, version, seals, and that the model is the one the schema describes)."""
    d = Path(directory)
    path = d / IMPUTER_FILE
    doc = read_sealed_document(d, IMPUTER_FILE, FORMAT, VERSION, "imputer")
    try:
        params = dict(doc["params"])
        params["hidden"] = tuple(params["hidden"])
        params["missing_values"] = np.nan if params.get("missing_values") is None else params["missing_values"]
        imp = VAEImputer(**params)
        imp._seed, imp._input = int(doc["seed"]), str(doc["input"])
        imp.n_features_in_ = int(doc["n_features_in"])
        if doc.get("feature_names_in") is not None:
            imp.feature_names_in_ = np.asarray([str(n) for n in doc["feature_names_in"]], dtype=object)
        imp.n_steps_, imp.best_step_, imp.validation_ = int(doc["n_steps"]), int(doc["best_step"]), []
        imp._check_params()
    except (KeyError, TypeError, ValueError, OverflowError) as e:  # VaekitError (a bad parameter) included
        raise CheckpointError(f"{path}: malformed imputer file ({e.__class__.__name__}: {e})") from None
    if imp._input not in ("frame", "array"):
        raise CheckpointError(f"{path}: input must be 'frame' or 'array', got {imp._input[:40]!r}")
    check_file_seals(doc, d, SEALED, path)
    imp.schema_ = TabularSchema.load_part(d / SCHEMA_FILE)
    if len(imp.schema_.names) != imp.n_features_in_:
        raise CheckpointError(f"{path}: n_features_in does not match {SCHEMA_FILE}")
    if imp.missing_mechanism == "self_masking":
        try:
            imp.mask_model_ = SelfMasking.from_json(imp.schema_.column_kinds, doc["missing_model"]).eval()
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: malformed imputer file ({e.__class__.__name__}: {e})") from None
    imp.model_, _ = load_model(d / MODEL_DIR)
    if imp.model_.config != imp._model_config():
        raise CheckpointError(f"{d / MODEL_DIR}: the model does not match {SCHEMA_FILE} (another imputer's model?)")
    imp.model_.eval()
    return imp
