"""Table files: the one reader (CSV/Parquet → DataFrame) and the one writer (atomic) for every job."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from vaekit.errors import DataError, VaekitError
from vaekit.files import atomic_save, atomic_write_text

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def read_incomplete_table(path: str | os.PathLike[str], na_values: Sequence[str] = ()) -> Any:
    """CSV/Parquet → DataFrame; strings in ``na_values`` become missing, and text columns that then hold only
    numbers become numeric (e.g. a column where '?' marked missing values)."""
    df = read_table(path)
    if na_values:
        df = df.mask(df.isin(list(na_values)))
        for c in df.columns:
            if df[c].dtype == object:
                num = pd.to_numeric(df[c], errors="coerce")
                if int(num.notna().sum()) == int(df[c].notna().sum()):
                    df[c] = num
    return df


def write_table(df: Any, path: str | os.PathLike[str]) -> Path:
    """DataFrame → .csv or .parquet, atomically (no index column)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise VaekitError(f"{path}: output must end in .csv or .parquet")
    if suffix == ".csv":
        atomic_write_text(path, df.to_csv(index=False))
    else:
        atomic_save(path, lambda tmp: df.to_parquet(tmp, index=False))
    return path


def read_table(path: str | os.PathLike[str]) -> Any:
    """CSV or Parquet → DataFrame; a DataError names the file when it cannot be read."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise DataError(f"{path}: tables must be .csv or .parquet")
    try:
        return pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except Exception as e:  # pandas/pyarrow raise many types for malformed files
        raise DataError(f"{path}: cannot read table ({e.__class__.__name__}: {str(e).splitlines()[0]})") from None
