"""Generator folders and the file-level work behind ``vaekit generate fit`` / ``vaekit generate sample``.

A fitted :class:`~vaekit.generate.TabularGenerator` is a folder (every file written atomically, no pickle)::

    generator.json               format, version, parameters, columns, dtypes, ranges, seed (written last)
    schema.json                  TabularSchema of the generated columns, with fitted transforms
    condition_schema.json        TabularSchema of the condition columns (conditional generators only)
    condition_table.safetensors  training condition values (floats / category codes), for drawing unfixed ones
    model/                       a vaekit model folder (config.json + model.safetensors)
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from sklearn.utils.validation import check_is_fitted

from .data.tabular import TabularSchema, read_table
from .errors import CheckpointError, DataError, VaekitError
from .generate import TabularGenerator
from .impute_io import TABLE_SUFFIXES, write_table
from .io import atomic_write_bytes, atomic_write_text, load_model, read_versioned_json, save_model

FORMAT, VERSION = "vaekit-generator", 1
GEN_FILE, SCHEMA_FILE, COND_SCHEMA_FILE = "generator.json", "schema.json", "condition_schema.json"
COND_TABLE_FILE, MODEL_DIR = "condition_table.safetensors", "model"


def save_generator(gen: TabularGenerator, directory: str | os.PathLike[str]) -> Path:
    check_is_fitted(gen, "model_")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    save_model(gen.model_, d / MODEL_DIR, extra={"tabular_generator": True})
    gen.schema_.save(d / SCHEMA_FILE)
    if gen.condition_schema_ is not None:
        gen.condition_schema_.save(d / COND_SCHEMA_FILE)
        atomic_write_bytes(d / COND_TABLE_FILE, st_save(
            {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in gen.condition_table_.items()}))
    params = gen.get_params()
    params["hidden"] = [int(h) for h in params["hidden"]]
    params["condition_columns"] = [str(c) for c in params["condition_columns"]]
    params["column_kinds"] = None if params["column_kinds"] is None else dict(params["column_kinds"])
    doc = {"format": FORMAT, "version": VERSION, "params": params, "seed": gen._seed, "columns": gen.columns_,
           "dtypes": gen.dtypes_, "ranges": gen.ranges_, "category_orders": gen.category_orders_,
           "n_train": gen.n_train_, "conditional": gen.condition_schema_ is not None}
    atomic_write_text(d / GEN_FILE, json.dumps(doc, indent=2))
    return d


def load_generator(directory: str | os.PathLike[str]) -> TabularGenerator:
    d = Path(directory)
    path = d / GEN_FILE
    if not path.is_file():
        raise CheckpointError(f"{d}: no tabular generator here ({GEN_FILE} not found)")
    doc = read_versioned_json(path, FORMAT, VERSION, "tabular generator")
    try:
        params = dict(doc["params"])
        params["hidden"] = tuple(params["hidden"])
        gen = TabularGenerator(**params)
        gen._seed, gen.columns_, gen.n_train_ = int(doc["seed"]), [str(c) for c in doc["columns"]], int(doc["n_train"])
        gen.dtypes_, gen.ranges_ = dict(doc["dtypes"]), {k: list(v) for k, v in doc["ranges"].items()}
        gen.category_orders_ = {k: list(v) for k, v in doc["category_orders"].items()}
        conditional = bool(doc["conditional"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: malformed generator file ({e.__class__.__name__}: {e})") from None
    gen.n_features_in_ = len(gen.columns_)
    try:
        gen.schema_ = TabularSchema.load(d / SCHEMA_FILE)
        gen.condition_schema_ = TabularSchema.load(d / COND_SCHEMA_FILE) if conditional else None
    except DataError as e:
        raise CheckpointError(str(e)) from None
    gen.condition_table_ = {}
    if conditional:
        try:
            t = st_load((d / COND_TABLE_FILE).read_bytes())
            gen.condition_table_ = {c.name: t[c.name].numpy() for c in gen.condition_schema_.columns}
        except (OSError, SafetensorError, KeyError) as e:
            raise CheckpointError(f"{d / COND_TABLE_FILE}: missing or corrupt ({e})") from None
    gen.model_, _ = load_model(d / MODEL_DIR)
    expected = gen._model_config()
    if gen.model_.config != expected:
        raise CheckpointError(f"{d / MODEL_DIR}: the model does not match {SCHEMA_FILE} (another generator's model?)")
    return gen


def parse_where(items: Sequence[str]) -> dict[str, str]:
    """``["col=value", …]`` → {col: "value"}; a malformed or repeated item is a DataError."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise DataError(f"--where {item!r}: expected COLUMN=VALUE")
        if key in out:
            raise DataError(f"--where gives column {key!r} twice")
        out[key] = value.strip()
    return out


def fit_file(table: str | os.PathLike[str], out: str | os.PathLike[str], ignore: Sequence[str] = (),
             column_kinds: Mapping[str, str] | None = None, overwrite: bool = False, **params: Any) -> dict[str, Any]:
    """Fit a :class:`TabularGenerator` on a CSV/Parquet table (``ignore`` columns dropped) and save it to ``out``."""
    out = Path(out)
    if (out / GEN_FILE).exists() and not overwrite:
        raise VaekitError(f"{out}: already holds a generator; pass --overwrite or choose another --out")
    df = read_table(table)
    missing = [c for c in ignore if c not in df.columns]
    if missing:
        raise DataError(f"{table}: --ignore names column(s) {missing} that the table does not have")
    df = df.drop(columns=list(ignore))
    na = df.isna().sum()
    if na.any():
        raise DataError(f"{table}: column(s) {list(na[na > 0].index)} have missing values; generation needs a "
                        "complete table (fill them with 'vaekit impute' or drop those rows)")
    t0 = time.perf_counter()
    gen = TabularGenerator(column_kinds=column_kinds or None, **params).fit(df)
    gen.save(out)
    kinds = [(c.name, c.kind) for s in (gen.schema_, gen.condition_schema_) if s is not None for c in s.columns]
    return {"rows": len(df), "columns": len(df.columns), "seconds": time.perf_counter() - t0, "out": str(out),
            "kinds": kinds, "epochs": len(gen.history_.epochs), "stopped": gen.history_.stopped}


def sample_file(model_dir: str | os.PathLike[str], n: int, out: str | os.PathLike[str],
                where: Sequence[str] = (), temperature: float = 1.0, seed: int = 0) -> dict[str, Any]:
    """Draw n rows (``where`` = ["col=value", …] conditions) and write them to a .csv or .parquet file."""
    if Path(out).suffix.lower() not in TABLE_SUFFIXES:
        raise VaekitError(f"{out}: output must end in .csv or .parquet")
    gen = load_generator(model_dir)
    t0 = time.perf_counter()
    rows = gen.sample(n, parse_where(where) or None, temperature, seed)
    write_table(rows, out)
    return {"rows": len(rows), "seconds": time.perf_counter() - t0, "out": str(out)}
