"""Generator folders and the file-level work behind ``vaekit generate fit`` / ``vaekit generate sample``.

The folder format is in :mod:`vaekit.jobs.generate.folder`.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from vaekit.data.tables import TABLE_SUFFIXES, kept_columns, read_table, write_table
from vaekit.errors import DataError, VaekitError
from vaekit.files import check_output_folder, retire_artifacts
from vaekit.jobs.generate.tabular import TabularGenerator


def load_generator(directory: str | os.PathLike[str]) -> TabularGenerator:
    """A fitted generator from its folder (see :mod:`vaekit.jobs.generate.folder`)."""
    return TabularGenerator.load(directory)


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
    """Fit a :class:`TabularGenerator` on a CSV/Parquet table (``ignore`` columns dropped) and save it to ``out``
    (a folder holding another artifact or other files is refused unless ``overwrite``: :func:`check_output_folder`)."""
    out = Path(out)
    replaced = check_output_folder(out, "generator", overwrite)
    df = read_table(table)
    df = df[kept_columns(list(df.columns), ignore, table, "generate")]
    na = df.isna().sum()
    if na.any():
        raise DataError(f"{table}: column(s) {list(na[na > 0].index)} have missing values; generation needs a "
                        "complete table (fill them with 'vaekit impute' or drop those rows)")
    t0 = time.perf_counter()
    gen = TabularGenerator(column_kinds=column_kinds or None, **params).fit(df)
    retire_artifacts(replaced)
    gen.save(out)
    kinds = [(c.name, c.kind) for s in (gen.schema_, gen.condition_schema_) if s is not None for c in s.columns]
    return {"rows": len(df), "columns": len(df.columns), "seconds": time.perf_counter() - t0, "out": str(out),
            "kinds": kinds, "epochs": len(gen.history_.epochs), "stopped": gen.history_.stopped}


def sample_file(model_dir: str | os.PathLike[str], n: int, out: str | os.PathLike[str],
                where: Sequence[str] = (), temperature: float = 1.0, seed: int = 0, device: str = "auto",
                n_threads: int | None = None) -> dict[str, Any]:
    """Draw n rows (``where`` = ["col=value", …] conditions) and write them to a .csv or .parquet file."""
    if Path(out).suffix.lower() not in TABLE_SUFFIXES:
        raise VaekitError(f"{out}: output must end in .csv or .parquet")
    gen = load_generator(model_dir).set_params(device=device, n_threads=n_threads)
    gen._check_params()  # an unknown device or a missing GPU: one line, before sampling
    t0 = time.perf_counter()
    rows = gen.sample(n, parse_where(where) or None, temperature, seed)
    write_table(rows, out)
    return {"rows": len(rows), "seconds": time.perf_counter() - t0, "out": str(out)}
