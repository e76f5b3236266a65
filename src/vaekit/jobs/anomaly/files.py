"""Streaming scores of table files with a fitted detector (its folder format: :mod:`vaekit.jobs.anomaly.folder`).

:func:`score_file` scores a CSV (pandas ``chunksize``) or Parquet file (pyarrow record batches) chunk by chunk, so
memory stays bounded by the chunk size, and writes the results incrementally to a temporary file in the target
folder that is renamed over the output at the end (a crash never leaves a half-written output).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from sklearn.utils.validation import check_is_fitted

from vaekit.data.tables import check_header, check_is_file, csv_safe
from vaekit.errors import DataError
from vaekit.files import (
    check_target,
    new_temp_file,
)
from vaekit.jobs.anomaly.detector import VAEAnomalyDetector, top_names
from vaekit.plots import save_histogram


def load_detector(directory: str | os.PathLike[str]) -> VAEAnomalyDetector:
    """A fitted detector from its folder (see :mod:`vaekit.jobs.anomaly.folder`)."""
    return VAEAnomalyDetector.load(directory)


def iter_table(path: str | os.PathLike[str], chunksize: int, dtype: dict[str, Any] | None = None) -> Iterator[Any]:
    """DataFrames of at most ``chunksize`` rows from a CSV (pandas chunks) or Parquet file (pyarrow batches)."""
    import pandas as pd

    path = Path(path)
    check_is_file(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            check_header(path)  # pandas would rename a repeated column name (a, a.1)
            with pd.read_csv(path, chunksize=chunksize, dtype=dtype) as reader:
                yield from reader
        elif suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunksize):
                yield batch.to_pandas()
        else:
            raise DataError(f"{path}: tables must be .csv or .parquet")
    except DataError:
        raise
    except Exception as e:  # pandas/pyarrow raise many types for malformed files
        raise DataError(f"{path}: cannot read table ({e.__class__.__name__}: {str(e).splitlines()[0]})") from None


def _string_columns(det: VAEAnomalyDetector) -> dict[str, Any]:
    """Categorical columns whose training categories are all strings are read as strings (stable across chunks)."""
    if det.schema_ is None or det._input != "frame":
        return {}
    return {c.name: str for c in det.schema_.columns
            if c.kind != "continuous" and c.categories and all(isinstance(v, str) for v in c.categories)}


class _Reservoir:
    """A uniform sample of at most ``cap`` values from a stream (algorithm R, vectorised per chunk)."""

    def __init__(self, cap: int, seed: int = 0) -> None:
        self.cap, self.seen, self.rng = cap, 0, np.random.default_rng(seed)
        self.values = np.empty(0)

    def add(self, v: np.ndarray) -> None:
        room = max(0, self.cap - len(self.values))
        self.values = np.concatenate([self.values, v[:room]])
        rest = v[room:]
        if len(rest):
            j = self.rng.integers(0, self.seen + room + np.arange(1, len(rest) + 1))
            keep = j < self.cap
            self.values[j[keep]] = rest[keep]
        self.seen += len(v)


class _Sink:
    """Appends result chunks to a CSV or Parquet file; ``close`` fsyncs (CSV) and is idempotent."""

    def __init__(self, path: str, suffix: str) -> None:
        self.path, self.parquet, self.writer, self.file = path, suffix == ".parquet", None, None
        if not self.parquet:
            self.file = open(path, "w", newline="", encoding="utf-8")
        self.header = True

    def write(self, df: Any) -> None:
        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(df, preserve_index=False)
            self.writer = self.writer or pq.ParquetWriter(self.path, table.schema)
            self.writer.write_table(table)
        else:
            csv_safe(df).to_csv(self.file, header=self.header, index=False)  # column names in cells: no formulas
        self.header = False

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.file is not None:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            self.file = None


def _score_chunk(det: VAEAnomalyDetector, chunk: Any, src: str) -> tuple[np.ndarray, np.ndarray]:
    """Scores and per-column terms of one chunk; errors name the file and the rows."""
    if det._input == "array":
        if chunk.shape[1] != det.n_features_in_:
            raise DataError(f"{src}: {chunk.shape[1]} columns, the detector was fitted on {det.n_features_in_} "
                            "(array input: columns are matched by position)")
        try:
            X: Any = chunk.to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{src}: non-numeric values; the detector was fitted on a numeric array") from None
    else:
        X = chunk
    try:
        x, unseen = det._encode_rows(X, reset=False)
        return det._score_encoded(x, unseen=unseen)
    except DataError as e:
        msg = str(e)
        raise DataError(f"{src}: {msg[3:] if msg.startswith('X: ') else msg}") from None


def check_score_paths(data: str | os.PathLike[str], out: str | os.PathLike[str],
                      plot: str | os.PathLike[str] | None) -> tuple[Path, Path, Path | None]:
    """The output table (.csv/.parquet, not the input) and the histogram (.png, neither of them) of a scoring run,
    checked before anything is read → (out, data, plot) as paths."""
    out, data = Path(out), Path(data)
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise DataError(f"{out}: output must end in .csv or .parquet")
    check_target(out)
    if data.exists() and out.resolve() == data.resolve():
        raise DataError(f"{out}: refusing to overwrite the input table; choose another output path")
    if plot is None:
        return out, data, None
    plot = Path(plot)
    if plot.suffix.lower() != ".png":
        raise DataError(f"{plot}: the score histogram is a PNG; give the file a .png name")
    check_target(plot)
    if plot.resolve() in (out.resolve(), data.resolve()):
        raise DataError(f"{plot}: the histogram would replace the scores or the input; choose another path")
    return out, data, plot


def score_file(detector: VAEAnomalyDetector | str | os.PathLike[str], data: str | os.PathLike[str],
               out: str | os.PathLike[str], chunksize: int = 50_000, id_column: str | None = None, top: int = 3,
               plot: str | os.PathLike[str] | None = None, plot_sample: int = 200_000,
               drop: Sequence[str] = ()) -> dict[str, Any]:
    """Score a CSV/Parquet file in chunks → ``out`` (.csv or .parquet) with columns [id], score, label, top_columns.

    Columns in ``drop`` are left out when present. Returns rows, outliers, seconds and rows/s; ``plot`` writes a
    histogram of (a uniform sample of at most ``plot_sample``) scores against the training scores with the threshold.
    """
    import pandas as pd

    det = detector if isinstance(detector, VAEAnomalyDetector) else load_detector(detector)
    check_is_fitted(det, "models_")
    if chunksize < 1:
        raise DataError(f"chunksize must be >= 1, got {chunksize}")
    out, data, plot = check_score_paths(data, out, plot)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = new_temp_file(out)  # mode from the umask; a killed run's stale temp of this output is removed
    reservoir, t0, n, n_out, start = _Reservoir(plot_sample), time.perf_counter(), 0, 0, 0
    sink = _Sink(tmp, out.suffix.lower())
    try:
        for chunk in iter_table(data, chunksize, _string_columns(det)):
            src = f"{data} (rows {start + 1}-{start + len(chunk)})"
            ids = None
            if id_column is not None:
                if id_column not in chunk.columns:
                    raise DataError(f"{data}: id column {id_column!r} not found")
                ids = chunk.pop(id_column)
            if drop:
                chunk = chunk.drop(columns=[c for c in drop if c in chunk.columns])
            scores, cols = _score_chunk(det, chunk, src)
            labels = (scores > det.threshold_).astype(np.int64)
            res = pd.DataFrame({"score": scores, "label": labels,
                                "top_columns": [";".join(t) for t in top_names(det.shares(cols), det.columns_, top)]})
            if ids is not None:
                res.insert(0, id_column, ids.to_numpy())
            sink.write(res)
            reservoir.add(scores)
            n, n_out, start = n + len(chunk), n_out + int(labels.sum()), start + len(chunk)
        if n == 0:
            sink.write(pd.DataFrame({**({id_column: []} if id_column else {}), "score": np.zeros(0),
                                     "label": np.zeros(0, np.int64), "top_columns": np.zeros(0, dtype=object)}))
        sink.close()
        os.replace(tmp, out)
    finally:
        sink.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
    seconds = time.perf_counter() - t0
    if plot is not None:
        save_histogram(plot, {data.name: reservoir.values, "training": det.decision_scores_}, det.threshold_,
                       title=f"{n} rows scored, {n_out} above the threshold")
    return {"rows": n, "outliers": n_out, "seconds": seconds, "rows_per_second": n / max(seconds, 1e-9),
            "threshold": det.threshold_, "out": str(out), "plot": None if plot is None else str(plot)}
