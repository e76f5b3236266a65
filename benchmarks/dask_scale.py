"""Rows/s of anomaly scoring and imputation on Dask (vaekit.dask) with 1 and 2 workers, and peak RSS per worker.

    python benchmarks/dask_scale.py --out benchmarks/results/scale/dask.json

The table: 10^7 rows × 8 numeric columns (3 latent factors + noise, 1% shifted outliers), generated file by file
onto disk as Parquet (10 files of 10^6 rows, row groups of 20,000 rows = the Dask partitions), never all in memory.
Scoring uses VAEAnomalyDetector's defaults (nll, k=16, 5 models; fitted with max_steps=100 on 20,000 rows), the
imputation VAEImputer's defaults (fitted with max_steps=300), 10% of the entries of each partition
masked (seeded per partition) before imputing. Each configuration starts a fresh LocalCluster (processes, one thread
per worker) and measures wall time from graph to result (read Parquet → mask → score/impute → a sum on the
workers; the workers import vaekit before the clock starts). At ~2,000 scored and ~200 imputed rows/s per core, 10^7 rows would take hours on this 2-core machine, so
each configuration processes the first --score-rows / --impute-rows rows of the table and the time for all 10^7
rows is EXTRAPOLATED from that rate (labelled so in the results). Peak RSS per worker: the worker process's
VmHWM (its high-water mark since it started, so it includes the Python/PyTorch runtime).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from peak_memory import peak_rss_mb  # VmHWM: reset by exec, unlike ru_maxrss, which a spawned worker inherits
from provenance import provenance

COLS = [f"x{j}" for j in range(8)]
ROW_GROUP = 20_000
FILE_ROWS = 1_000_000


def make_table(folder: Path, rows: int, seed: int = 0) -> list[Path]:
    """rows × 8 Parquet, written one file (10^6 rows) at a time; reused if already there with the same shape."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / "shape.json"
    want = {"rows": rows, "file_rows": FILE_ROWS, "row_group": ROW_GROUP, "seed": seed}
    files = [folder / f"part-{i:03d}.parquet" for i in range(-(-rows // FILE_ROWS))]
    if stamp.is_file() and json.loads(stamp.read_text()) == want and all(f.is_file() for f in files):
        return files
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(3, len(COLS)))
    for i, f in enumerate(files):
        n = min(FILE_ROWS, rows - i * FILE_ROWS)
        x = rng.normal(size=(n, 3)) @ w + 0.3 * rng.normal(size=(n, len(COLS)))
        out = rng.random(n) < 0.01
        x[out] += rng.normal(0, 4, size=(int(out.sum()), len(COLS)))
        pq.write_table(pa.table({c: x[:, j] for j, c in enumerate(COLS)}), f, row_group_size=ROW_GROUP)
    stamp.write_text(json.dumps(want))
    return files


def _warm() -> None:
    import vaekit.jobs.anomaly.detector
    import vaekit.jobs.impute.imputer  # noqa: F401


def _mask(part: pd.DataFrame, frac: float, partition_info: dict[str, Any] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(1000 + (partition_info or {}).get("number", 0))
    return part.mask(rng.random(part.shape) < frac)


def _head(part: pd.DataFrame, n: int) -> pd.DataFrame:
    return part.iloc[:n]


def run_config(kind: str, est: Any, files: list[Path], rows: int, workers: int) -> dict[str, Any]:
    import dask
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    import vaekit.dask as vdask

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
            Client(cl) as client:
        client.run(_warm)
        base = client.run(peak_rss_mb)
        t0 = time.perf_counter()
        ddf = dd.read_parquet([str(f) for f in files], split_row_groups=True)
        per_part = min(ROW_GROUP, max(1, rows // 4))  # the same partitions for any worker count, ≥ 4 of them
        n_parts = -(-rows // per_part)
        ddf = ddf.partitions[:n_parts]
        if per_part < ROW_GROUP:
            ddf = ddf.map_partitions(_head, per_part, meta=ddf._meta)
        if kind == "score":
            res = vdask.score(ddf, est)
            done, check = dask.compute(res["score"].count(), res["label"].sum())
        else:
            res = vdask.impute(ddf.map_partitions(_mask, 0.1, meta=ddf._meta), est)
            done, check = dask.compute(res[COLS[0]].count(), res[COLS].isna().sum().sum())
        seconds = time.perf_counter() - t0
        peak = client.run(peak_rss_mb)
    return {"job": kind, "workers": workers, "rows": int(done), "partitions": n_parts, "seconds": round(seconds, 2),
            "rows_per_second": round(done / seconds, 1),
            "extrapolated_seconds_for_1e7_rows": round(1e7 / (done / seconds), 0),
            "peak_rss_mb_per_worker": sorted(round(v, 1) for v in peak.values()),
            "rss_mb_per_worker_before": sorted(round(v, 1) for v in base.values()),
            "check": int(check)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000, help="rows of the generated table on disk")
    ap.add_argument("--score-rows", type=int, default=60_000, help="rows scored per configuration")
    ap.add_argument("--impute-rows", type=int, default=6_000, help="rows imputed per configuration")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--data", type=Path, default=HERE.parent / "runs" / "bench" / "dask_scale")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "scale" / "dask.json")
    args = ap.parse_args()

    import torch

    import vaekit

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    files = make_table(args.data, args.rows)
    gen_s = time.perf_counter() - t0
    train = pd.read_parquet(files[0]).iloc[:20_000]
    t0 = time.perf_counter()
    det = vaekit.VAEAnomalyDetector(max_steps=100, random_state=0, n_threads=1).fit(train)
    rng = np.random.default_rng(7)
    imp = vaekit.VAEImputer(max_steps=300, random_state=0, n_threads=1).fit(train.mask(rng.random(train.shape) < 0.1))
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = train.iloc[:10_000]
    det.decision_function(ref)
    in_process = 10_000 / (time.perf_counter() - t0)
    rows_out = []
    for kind, est, n in (("score", det, args.score_rows), ("impute", imp, args.impute_rows)):
        for w in args.workers:
            r = run_config(kind, est, files, n, w)
            print(json.dumps(r), flush=True)
            rows_out.append(r)
    for kind in ("score", "impute"):
        one = next((r for r in rows_out if r["job"] == kind and r["workers"] == 1), None)
        for r in rows_out:
            if one is not None and r["job"] == kind:
                r["speedup_vs_1_worker"] = round(r["rows_per_second"] / one["rows_per_second"], 2)
    result = {
        "table": {"rows_on_disk": args.rows, "columns": len(COLS), "files": len(files), "row_group_rows": ROW_GROUP,
                  "generate_seconds": round(gen_s, 1)},
        "estimators": {"detector": "VAEAnomalyDetector defaults (nll, k=16, n_models=5, hidden 64,64), "
                                   "fitted with max_steps=100 on 20,000 rows",
                       "imputer": f"VAEImputer defaults (n_samples={imp.n_samples}, hidden 128,128,128), fitted with "
                                  "max_steps=300 on 20,000 rows; 10% of entries masked per partition",
                       "fit_seconds": round(fit_s, 1)},
        "in_process_score_rows_per_second_1_thread": round(in_process, 1),
        "note": "each configuration processes the first `rows` rows of the 10^7-row table; "
                "extrapolated_seconds_for_1e7_rows = 10^7 / measured rows_per_second (EXTRAPOLATED, not measured)",
        "rows": rows_out, **provenance(threads=1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
