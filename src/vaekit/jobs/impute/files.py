"""Files for ``vaekit impute``: read an incomplete CSV/Parquet table, impute it, write the completed table(s).

``--multiple M`` writes ONE long table: a leading ``imputation`` column (1..M) followed by the M completed copies of
the input stacked in order (row i of copy m is row i of the input), so ``groupby("imputation")`` gives each copy.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from vaekit.data.tables import (
    TABLE_SUFFIXES,
    kept_columns,
    read_incomplete_table,
    write_table,
)
from vaekit.errors import VaekitError
from vaekit.jobs.impute.imputer import VAEImputer
from vaekit.options import MAX_IMPUTATIONS


def impute_file(data: str | os.PathLike[str], out: str | os.PathLike[str], multiple: int = 0,
                uncertainty: str | os.PathLike[str] | None = None, ignore: Sequence[str] = (),
                na_values: Sequence[str] = (), column_kinds: Mapping[str, str] | None = None,
                **params: Any) -> dict[str, Any]:
    """Fit :class:`~vaekit.jobs.impute.imputer.VAEImputer` on DATA and write the completed table (or M imputations, long format).

    ``ignore`` columns (IDs, labels) are neither used nor imputed; they are copied to the output unchanged.
    """
    import pandas as pd


    for p in [out] + ([uncertainty] if uncertainty is not None else []):
        if Path(p).suffix.lower() not in TABLE_SUFFIXES:
            raise VaekitError(f"{p}: output must end in .csv or .parquet")
    if not 0 <= multiple <= MAX_IMPUTATIONS:
        raise VaekitError(f"--multiple must be an integer in 0..{MAX_IMPUTATIONS}, got {multiple}")
    VAEImputer(column_kinds=column_kinds or None, **params)._check_params()  # n_samples etc.: before the table is read
    df = read_incomplete_table(data, na_values)
    use = kept_columns(list(df.columns), ignore, data, "impute")
    t0 = time.perf_counter()
    imp = VAEImputer(column_kinds=column_kinds or None, **params).fit(df[use])
    fit_s = time.perf_counter() - t0
    n_missing = int(df[use].isna().to_numpy().sum())

    def full(part: Any) -> Any:
        res = df.copy()
        for c in use:
            res[c] = part[c]
        return res

    if multiple:
        copies = imp.multiple_imputations(df[use], multiple)
        table = pd.concat([full(c).assign(imputation=i + 1) for i, c in enumerate(copies)], ignore_index=True)
        table = table[["imputation", *df.columns]]
    else:
        table = full(imp.transform(df[use]))
    write_table(table, out)
    if uncertainty is not None:
        write_table(imp.uncertainty(df[use]).reset_index(drop=True), uncertainty)
    return {"rows": len(df), "columns": len(use), "missing": n_missing, "fit_seconds": fit_s,
            "seconds": time.perf_counter() - t0, "out": str(out), "kinds": [(c.name, c.kind) for c in imp.schema_.columns],
            "multiple": multiple, "steps": imp.n_steps_}
