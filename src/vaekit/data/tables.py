"""Table files: the one reader (CSV/Parquet → DataFrame) and the one writer (atomic) for every job.

Reading: a header with a column name twice is refused (pandas would rename the second one ``a.1``); a folder where
a file is expected is named as such. Writing CSV: text cells (and column names) that a spreadsheet would run as a
formula — starting with ``= + - @``, a tab or a carriage return — get a leading single quote (OWASP's CSV-injection
rule); numbers, and text that is just a number such as ``-1.5``, are written as they are. Floats are written in
their shortest round-trip form (pandas' default); values come rounded to their column's resolution from the jobs.
"""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from vaekit.errors import DataError, VaekitError
from vaekit.files import atomic_save, atomic_write_text

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity|nan)", re.IGNORECASE)


def csv_cell(v: Any) -> Any:
    """A text value a spreadsheet would evaluate (``=…``, ``+…``, ``-…``, ``@…``, tab, CR) → prefixed with ``'``;
    anything else (numbers, text that is a plain number) unchanged."""
    if isinstance(v, str) and v.startswith(FORMULA_START) and not _NUMBER.fullmatch(v):
        return "'" + v
    return v


def csv_safe(df: Any) -> Any:
    """The DataFrame with every text cell and column name passed through :func:`csv_cell` (a copy only if needed)."""
    cols = [csv_cell(c) for c in df.columns]
    out = None
    for j in range(df.shape[1]):
        s = df.iloc[:, j]
        if pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype) or \
                pd.api.types.is_datetime64_any_dtype(s.dtype):
            continue
        obj = s.astype(object)
        hit = obj.map(lambda v: isinstance(v, str) and v.startswith(FORMULA_START)).to_numpy(dtype=bool)
        if hit.any():
            out = df.copy() if out is None else out
            out.isetitem(j, obj.map(csv_cell))
    if cols != list(df.columns):
        out = (df.copy() if out is None else out).set_axis(cols, axis=1)
    return df if out is None else out


def kept_columns(columns: Sequence[Any], ignore: Sequence[Any], source: Any, job: str) -> list[Any]:
    """The columns left once those ``--ignore`` names are dropped, in table order; a name the table lacks, or nothing
    left for ``job`` to work on, is a one-line DataError naming ``source``."""
    have, drop = set(columns), set(ignore)
    absent = [c for c in ignore if c not in have]
    if absent:
        raise DataError(f"{source}: --ignore names column(s) {absent} that the table does not have")
    use = [c for c in columns if c not in drop]
    if not use:
        raise DataError(f"{source}: no columns left to {job}")
    return use


def check_header(path: str | os.PathLike[str]) -> None:
    """A CSV whose header names a column twice → DataError listing the names (read before pandas renames them)."""
    try:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
            header = next(csv.reader(f), [])
    except (OSError, csv.Error):
        return  # the table reader reports unreadable files
    twice = sorted({h for h in header if h != "" and header.count(h) > 1})
    if twice:
        raise DataError(f"{path}: duplicate column name(s) {twice} in the header; give every column its own name")


def check_is_file(path: Path) -> None:
    """A missing path → 'file not found'; a folder → 'is a folder, expected a file' (DataError)."""
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a file")
    if not path.is_file():
        raise DataError(f"{path}: file not found")


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
        atomic_write_text(path, csv_safe(df).to_csv(index=False))
    else:
        atomic_save(path, lambda tmp: df.to_parquet(tmp, index=False))
    return path


def read_table(path: str | os.PathLike[str]) -> Any:
    """CSV or Parquet → DataFrame; a DataError names the file when it cannot be read."""
    import pandas as pd

    path = Path(path)
    check_is_file(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise DataError(f"{path}: tables must be .csv or .parquet")
    if suffix == ".csv":
        check_header(path)
    try:
        df = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except Exception as e:  # pandas/pyarrow raise many types for malformed files
        raise DataError(f"{path}: cannot read table ({e.__class__.__name__}: {str(e).splitlines()[0]})") from None
    twice = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
    if twice:
        raise DataError(f"{path}: duplicate column name(s) {twice}; give every column its own name")
    return df


def iter_table_chunks(path: str | os.PathLike[str], rows: int = 4096) -> Any:
    """CSV (``rows`` lines at a time) or Parquet (record batches of ≤ ``rows``, row group by row group) →
    DataFrames, for tables too large to read at once; the same checks as :func:`read_table`."""
    path = Path(path)
    check_is_file(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataError(f"{path}: tables must be .csv or .parquet")
    try:
        if suffix == ".csv":
            check_header(path)
            with pd.read_csv(path, chunksize=rows) as reader:
                for df in reader:
                    yield df
        else:
            import pyarrow.parquet as pq

            f = pq.ParquetFile(path)
            names = f.schema_arrow.names
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise DataError(f"{path}: duplicate column name(s) {twice}; give every column its own name")
            for batch in f.iter_batches(batch_size=rows):
                yield batch.to_pandas()
    except DataError:
        raise
    except Exception as e:  # pandas/pyarrow raise many types for malformed files
        raise DataError(f"{path}: cannot read table ({e.__class__.__name__}: {str(e).splitlines()[0]})") from None
