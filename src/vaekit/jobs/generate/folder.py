"""A fitted :class:`~vaekit.jobs.generate.tabular.TabularGenerator` is a folder (every file written atomically, no pickle)::
    generator.json               format, version, parameters (not device/n_threads), columns, dtypes, ranges, seed;
                                 files_blake2b (the digest of every other file below, model/config.json included)
                                 and config_blake2b over itself: written last, checked first
    schema.json                  TabularSchema of the generated columns, with fitted transforms
    condition_schema.json        TabularSchema of the condition columns (conditional generators only)
    condition_table.safetensors  training condition values (floats / category codes), for drawing unfixed ones
    model/                       a vaekit model folder (config.json + model.safetensors)
"""
from __future__ import annotations

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
from vaekit.errors import CheckpointError
from vaekit.files import (
    atomic_write_bytes,
    check_file_seals,
    portable_params,
    read_sealed_document,
    read_tensors,
    write_sealed_document,
)

FORMAT, VERSION = "vaekit-generator", 2  # 2: files_blake2b + config_blake2b in generator.json
GEN_FILE, SCHEMA_FILE, COND_SCHEMA_FILE = "generator.json", "schema.json", "condition_schema.json"
COND_TABLE_FILE, MODEL_DIR = "condition_table.safetensors", "model"


def _sealed_files(conditional: bool) -> list[str]:
    """The files generator.json vouches for (relative names); model/config.json vouches for the weights."""
    return [SCHEMA_FILE] + [COND_SCHEMA_FILE, COND_TABLE_FILE] * conditional + [f"{MODEL_DIR}/config.json"]


def save_generator(gen: Any, directory: str | os.PathLike[str]) -> Path:
    """Write a fitted generator's folder (model, schemas, condition table; generator.json last)."""
    check_is_fitted(gen, "model_")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    save_model(gen.model_, d / MODEL_DIR, extra={"tabular_generator": True})
    gen.schema_.save(d / SCHEMA_FILE)
    if gen.condition_schema_ is not None:
        gen.condition_schema_.save(d / COND_SCHEMA_FILE)
        atomic_write_bytes(d / COND_TABLE_FILE, st_save(
            {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in gen.condition_table_.items()}))
    params = portable_params(gen.get_params())
    params["condition_columns"] = [str(c) for c in params["condition_columns"]]
    doc = {"format": FORMAT, "version": VERSION, "params": params, "seed": gen._seed, "columns": gen.columns_,
           "dtypes": gen.dtypes_, "ranges": gen.ranges_, "category_orders": gen.category_orders_,
           "n_train": gen.n_train_, "conditional": gen.condition_schema_ is not None}
    write_sealed_document(d, GEN_FILE, doc, _sealed_files(doc["conditional"]))
    return d


def load_generator(directory: str | os.PathLike[str], cls: type) -> Any:
    """Read a generator folder into a new ``cls`` instance (format, version and model checked)."""
    d = Path(directory)
    path = d / GEN_FILE
    doc = read_sealed_document(d, GEN_FILE, FORMAT, VERSION, "tabular generator")
    try:
        params = dict(doc["params"])
        params["hidden"] = tuple(params["hidden"])
        if "time_limit" in params:  # folders written before the limit was in minutes held seconds
            params["time_limit_min"] = float(params.pop("time_limit")) / 60.0
        gen = cls(**params)
        gen._seed, gen.columns_, gen.n_train_ = int(doc["seed"]), [str(c) for c in doc["columns"]], int(doc["n_train"])
        gen.dtypes_, gen.ranges_ = dict(doc["dtypes"]), {k: list(v) for k, v in doc["ranges"].items()}
        gen.category_orders_ = {k: list(v) for k, v in doc["category_orders"].items()}
        conditional = bool(doc["conditional"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: malformed generator file ({e.__class__.__name__}: {e})") from None
    gen.n_features_in_ = len(gen.columns_)
    check_file_seals(doc, d, _sealed_files(conditional), path)
    gen.schema_ = TabularSchema.load_part(d / SCHEMA_FILE)
    gen.condition_schema_ = TabularSchema.load_part(d / COND_SCHEMA_FILE) if conditional else None
    gen.condition_table_ = {}
    if conditional:
        try:
            t, _ = read_tensors(d / COND_TABLE_FILE, "condition table")  # size-checked before it is read
            gen.condition_table_ = {c.name: t[c.name].numpy() for c in gen.condition_schema_.columns}
        except (OSError, SafetensorError, KeyError) as e:
            raise CheckpointError(f"{d / COND_TABLE_FILE}: missing or corrupt ({e})") from None
    gen.model_, _ = load_model(d / MODEL_DIR)
    expected = gen._model_config()
    if gen.model_.config != expected:
        raise CheckpointError(f"{d / MODEL_DIR}: the model does not match {SCHEMA_FILE} (another generator's model?)")
    return gen
