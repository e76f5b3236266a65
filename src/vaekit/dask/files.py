"""Table files for Dask jobs: read a CSV/Parquet table by partitions, write a Dask DataFrame as ONE file.

:func:`write_table` produces the same file the in-process jobs write (one .csv or .parquet, no index column, CSV
cells made formula-safe by :func:`vaekit.data.tables.csv_safe`): the partitions are computed on the cluster, a
bounded number at a time, and appended in order to a temp file beside the target that is renamed over it at the
end (a failed job never leaves a half-written output). To write one file per partition instead, use Dask's own
``ddf.to_parquet(folder)``.
"""
from __future__ import annotations

import collections
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from vaekit.dask.client import client_or_none, require_dask
from vaekit.data.tables import check_header, check_is_file, csv_safe
from vaekit.errors import DataError, VaekitError
from vaekit.files import check_target, new_temp_file

READ_SUFFIXES = (".csv", ".parquet", ".pq")


def read_table(path: str | os.PathLike[str], dtype: Mapping[str, Any] | None = None, assume_missing: bool = False,
               na_values: Sequence[str] = (), blocksize: str | int = "64MB") -> Any:
    """A CSV file (blocks of ``blocksize`` bytes) or a Parquet file or folder (row groups / files) → Dask DataFrame.

    ``dtype`` fixes column dtypes of a CSV (Dask infers the rest from the first block, so integer columns that
    have missing values only further down need ``assume_missing``: integers are then read as floats).
    """
    dd = require_dask()[1]
    path = Path(path)
    parquet_dir = path.is_dir() and any(p.suffix.lower() in (".parquet", ".pq") for p in path.iterdir())
    if not parquet_dir:
        check_is_file(path)
    suffix = ".parquet" if parquet_dir else path.suffix.lower()
    if suffix not in READ_SUFFIXES:
        raise DataError(f"{path}: tables must be .csv or .parquet (or a folder of .parquet files)")
    try:
        if suffix == ".csv":
            check_header(path)
            return dd.read_csv(str(path), dtype=dict(dtype or {}) or None, assume_missing=assume_missing,
                               na_values=list(na_values) or None, blocksize=blocksize)
        if na_values:
            raise VaekitError(f"{path}: extra missing-value strings (--na-values) apply to CSV input only")
        return dd.read_parquet(str(path))
    except VaekitError:
        raise
    except Exception as e:  # pandas/pyarrow/fsspec raise many types for malformed files
        raise DataError(f"{path}: cannot read table ({e.__class__.__name__}: {str(e).splitlines()[0]})") from None


def _computed(ddf: Any, in_flight: int | None) -> Iterator[Any]:
    """The partitions as pandas DataFrames, in order, at most ``in_flight`` computing at once."""
    dask = require_dask()[0]
    parts = list(ddf.to_delayed())
    client = client_or_none()
    if client is None:
        step = in_flight or 4
        for a in range(0, len(parts), step):
            yield from dask.compute(*parts[a:a + step])
        return
    window = in_flight or max(2, 2 * sum(client.nthreads().values()))
    pending: collections.deque[Any] = collections.deque()
    todo = iter(parts)
    for d in todo:
        pending.append(client.compute(d))
        if len(pending) >= window:
            break
    while pending:
        fut = pending.popleft()
        df = fut.result()
        fut.release()
        nxt = next(todo, None)
        if nxt is not None:
            pending.append(client.compute(nxt))
        yield df


def write_table(ddf: Any, out: str | os.PathLike[str], on_partition: Callable[[Any], None] | None = None,
                in_flight: int | None = None) -> int:
    """Compute ddf and write it to ONE .csv or .parquet file (no index), atomically; returns the number of rows.

    ``on_partition(df)`` sees every computed partition before it is written (e.g. to count or sample results).
    ``in_flight``: partitions computed at once (default: twice the cluster's threads), which bounds the memory.
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise VaekitError(f"{out}: output must end in .csv or .parquet")
    check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = new_temp_file(out)
    rows, writer, schema, first = 0, None, None, True
    try:
        with open(tmp, "w", newline="", encoding="utf-8") if suffix == ".csv" else open(os.devnull, "w") as f:
            for df in _computed(ddf, in_flight):
                if on_partition is not None:
                    on_partition(df)
                if suffix == ".csv":
                    csv_safe(df).to_csv(f, header=first, index=False)
                else:
                    import pyarrow as pa
                    import pyarrow.parquet as pq

                    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
                    if writer is None:
                        schema = table.schema
                        writer = pq.ParquetWriter(tmp, schema)
                    writer.write_table(table)
                rows, first = rows + len(df), False
            if first:  # no partitions at all: the header / schema of the meta
                if suffix == ".csv":
                    csv_safe(ddf._meta).to_csv(f, index=False)
                else:
                    ddf._meta.to_parquet(tmp, index=False)
            if suffix == ".csv":
                f.flush()
                os.fsync(f.fileno())
        if writer is not None:
            writer.close()
            writer = None
        os.replace(tmp, out)
    finally:
        if writer is not None:
            writer.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
    return rows
