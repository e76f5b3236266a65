"""``vaekit anomaly score … --dask ADDRESS``: the same output file as :func:`~vaekit.jobs.anomaly.files.score_file`,
the table read and scored by partitions on a Dask cluster (:mod:`vaekit.dask`), the results streamed back in order
into one .csv/.parquet file."""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from vaekit import dask as vdask
from vaekit.errors import DataError
from vaekit.jobs.anomaly.detector import VAEAnomalyDetector
from vaekit.jobs.anomaly.files import _Reservoir, _string_columns, check_score_paths
from vaekit.plots import save_histogram


def score_file_dask(det: VAEAnomalyDetector, data: str | os.PathLike[str], out: str | os.PathLike[str],
                    address: str | None, id_column: str | None = None, top: int = 3,
                    plot: str | os.PathLike[str] | None = None, plot_sample: int = 200_000,
                    drop: Sequence[str] = ()) -> dict[str, Any]:
    """Score DATA on the Dask scheduler at ``address`` ('local' starts a LocalCluster; None: the active Client or
    Dask's local scheduler) → ``out`` with columns [id], score, label, top_columns, as ``score_file`` writes."""
    out, data, plot = check_score_paths(data, out, plot)
    reservoir, counts = _Reservoir(plot_sample), {"outliers": 0}

    def seen(df: Any) -> None:
        reservoir.add(df["score"].to_numpy(dtype=np.float64))
        counts["outliers"] += int(df["label"].sum())

    t0 = time.perf_counter()
    with vdask.connect(address):
        ddf = vdask.read_table(data, dtype=_string_columns(det))
        if id_column is not None and id_column not in ddf.columns:
            raise DataError(f"{data}: id column {id_column!r} not found")
        ddf = ddf.drop(columns=[c for c in drop if c in ddf.columns and c != id_column])
        scored = vdask.score(ddf, det, top=top, keep=[id_column] if id_column else ())
        n = vdask.write_table(scored, out, on_partition=seen)
    seconds = time.perf_counter() - t0
    if plot is not None:
        save_histogram(plot, {data.name: reservoir.values, "training": det.decision_scores_}, det.threshold_,
                       title=f"{n} rows scored, {counts['outliers']} above the threshold")
    return {"rows": n, "outliers": counts["outliers"], "seconds": seconds, "rows_per_second": n / max(seconds, 1e-9),
            "threshold": det.threshold_, "out": str(out), "plot": None if plot is None else str(plot)}
