"""``vaekit impute … --dask ADDRESS``: fit :class:`~vaekit.jobs.impute.imputer.VAEImputer` on the table (or, past
``fit_rows`` rows, on a seeded uniform sample of about that many), then impute it by partitions on a Dask cluster
(:func:`vaekit.dask.impute`) into one completed .csv/.parquet file, as :func:`~vaekit.jobs.impute.files.impute_file`
writes it. CSV integer columns are read as floats (Dask fixes dtypes from the first block, and a column may have
missing values only further down); a table of at most ``fit_rows`` rows gives the same imputations as without Dask.
"""
from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vaekit import dask as vdask
from vaekit.data.tables import TABLE_SUFFIXES, kept_columns
from vaekit.errors import VaekitError
from vaekit.files import check_target
from vaekit.jobs.impute.imputer import VAEImputer

FIT_ROWS = 1_000_000


def impute_file_dask(data: str | os.PathLike[str], out: str | os.PathLike[str], address: str | None,
                     ignore: Sequence[str] = (), na_values: Sequence[str] = (),
                     column_kinds: Mapping[str, str] | None = None, fit_rows: int = FIT_ROWS,
                     **params: Any) -> dict[str, Any]:
    """Fit on DATA (≤ ``fit_rows`` rows, else a sample), impute DATA by partitions on the cluster → ``out``."""
    dask = vdask.require_dask()[0]  # a one-line error without the extra, before anything else
    out = Path(out)
    if out.suffix.lower() not in TABLE_SUFFIXES:
        raise VaekitError(f"{out}: output must end in .csv or .parquet")
    check_target(out)
    if isinstance(fit_rows, bool) or not isinstance(fit_rows, int) or fit_rows < 2:
        raise VaekitError(f"--fit-rows must be a whole number >= 2, got {fit_rows!r}")
    VAEImputer(column_kinds=column_kinds or None, **params)._check_params()  # before anything is read
    t0 = time.perf_counter()
    with vdask.connect(address):
        ddf = vdask.read_table(data, assume_missing=True, na_values=na_values)
        use = kept_columns(list(ddf.columns), ignore, data, "impute")
        n, n_missing = dask.compute(ddf.map_partitions(len).sum(), ddf[use].isna().sum().sum())
        n, n_missing = int(n), int(n_missing)
        seed = int(params.get("random_state") or 0)
        sample = ddf if n <= fit_rows else ddf.sample(frac=fit_rows / n, random_state=seed)
        train = sample[use].compute().reset_index(drop=True)
        imp = VAEImputer(column_kinds=column_kinds or None, **params).fit(train)
        fit_s = time.perf_counter() - t0
        rows = vdask.write_table(vdask.impute(ddf, imp), out)
    return {"rows": rows, "columns": len(use), "missing": n_missing, "fit_seconds": fit_s, "fit_rows": len(train),
            "seconds": time.perf_counter() - t0, "out": str(out), "kinds": [(c.name, c.kind) for c in imp.schema_.columns],
            "multiple": 0, "steps": imp.n_steps_}
