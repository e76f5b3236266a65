"""Benchmark: scoring throughput on 1,000,000 rows × 20 columns, vaekit (streamed from disk) next to PyOD's VAE.

A synthetic table (3 latent factors → 20 continuous columns, plus a mixed-type variant with 2 categorical and
2 binary columns among the 20) is generated into ``--workdir`` (not committed; about 400 MB of CSV) and deleted
afterwards unless ``--keep``. Both detectors are fitted on the first 20,000 rows. Each measurement runs in a fresh
process so that its peak resident memory (ru_maxrss) is its own:

* vaekit ``score_file`` on the CSV (pandas chunks of 50,000 rows) and on Parquet (row groups of 50,000 rows),
  end to end: read, encode, score, write the scores CSV (score, label, top_columns);
* vaekit ``decision_function`` and PyOD VAE ``decision_function`` on the whole array in memory (PyOD has no
  streaming API), with the default configurations and, for vaekit, also a single model with k = 1.

    nice -n 10 python benchmarks/anomaly_throughput.py --out benchmarks/results/anomaly
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peak_memory import peak_rss_mb  # noqa: E402

N_FIT = 20_000


def generate(n: int, seed: int = 0, mixed: bool = False) -> Any:
    import pandas as pd

    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    w = rng.normal(size=(3, 20))
    x = (z @ w + 0.3 * rng.normal(size=(n, 20))).astype(np.float32)
    out = rng.random(n) < 0.01  # 1% anomalies: independent noise
    x[out] = rng.normal(size=(int(out.sum()), 20)).astype(np.float32) * 3
    df = pd.DataFrame(x, columns=[f"f{j:02d}" for j in range(20)])
    if mixed:
        df["f16"] = np.where(x[:, 16] > 0, "hi", "lo")
        df["f17"] = pd.cut(x[:, 17], [-np.inf, -1, 0, 1, np.inf], labels=["a", "b", "c", "d"]).astype(str)
        df["f18"] = x[:, 18] > 0.5
        df["f19"] = (x[:, 19] > 0).astype(np.int64)
    return df


def task(kind: str, work: str, threads: int) -> dict[str, Any]:
    """One measurement in a fresh process → rows/s, seconds, peak RSS (MB)."""
    import pandas as pd
    import torch

    torch.set_num_threads(threads)
    w = Path(work)
    if kind.startswith("vaekit_file"):
        from vaekit.jobs.anomaly.files import score_file

        det_dir, src = (w / "det_mixed", w / "mixed.csv") if kind.endswith("mixed") else (
            w / "det", w / ("data.parquet" if "parquet" in kind else "data.csv"))
        base = peak_rss_mb()
        res = score_file(det_dir, src, w / f"scores_{kind}.csv", chunksize=50_000)
        return {"kind": kind, "rows": res["rows"], "seconds": res["seconds"], "rows_per_s": res["rows_per_second"],
                "peak_rss_mb": peak_rss_mb(), "rss_before_mb": base}
    x = pd.read_parquet(w / "data.parquet").to_numpy(np.float32)
    if kind.startswith("vaekit_memory"):
        from vaekit.jobs.anomaly.files import load_detector

        det = load_detector(w / "det")
        if kind.endswith("k1"):
            det = load_detector(w / "det_k1")
    else:
        from pyod.models.vae import VAE

        t0 = time.perf_counter()
        det = VAE(random_state=0, verbose=0, **json.loads(os.environ.get("PYOD_VAE_PARAMS", "{}"))).fit(x[:N_FIT])
        fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    s = det.decision_function(x)
    dt = time.perf_counter() - t0
    out = {"kind": kind, "rows": len(s), "seconds": dt, "rows_per_s": len(s) / dt, "peak_rss_mb": peak_rss_mb()}
    if kind == "pyod_vae_memory":  # PyOD scores in batches of its training batch size (32) unless told otherwise
        out["fit_seconds"] = fit_s
        t0 = time.perf_counter()
        det.decision_function(x, batch_size=10_000)
        dt = time.perf_counter() - t0
        out["batch_10000"] = {"seconds": dt, "rows_per_s": len(s) / dt, "peak_rss_mb": peak_rss_mb()}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/anomaly")
    ap.add_argument("--workdir", default=None, help="where the synthetic files go (default: a temp folder)")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--vaekit-params", default="{}", help="JSON overrides of VAEAnomalyDetector defaults (smoke tests)")
    args = ap.parse_args(argv)
    import torch

    from vaekit import VAEAnomalyDetector
    from vaekit.files import atomic_write_text

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from provenance import provenance

    prov = provenance(threads=args.threads)  # before the run: its load average is the one the run met
    work = Path(args.workdir or tempfile.mkdtemp(prefix="vaekit_tp_"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"rows": args.rows, "columns": 20, "threads": args.threads, "n_fit": N_FIT,
                               "torch": torch.__version__, "pyod": __import__("pyod").__version__}
    try:
        t0 = time.perf_counter()
        df, mixed = generate(args.rows), generate(args.rows, mixed=True)
        df.to_csv(work / "data.csv", index=False)
        df.to_parquet(work / "data.parquet", row_group_size=50_000)
        mixed.to_csv(work / "mixed.csv", index=False)
        results["generate_seconds"] = time.perf_counter() - t0
        print(f"generated {args.rows} rows in {results['generate_seconds']:.0f} s; "
              f"CSV {os.path.getsize(work / 'data.csv') / 2**20:.0f} MB", flush=True)
        fits = {}
        for name, frame, params in (("det", df, {}), ("det_k1", df, {"n_models": 1, "k": 1}),
                                    ("det_mixed", mixed, {})):
            t0 = time.perf_counter()
            det = VAEAnomalyDetector(random_state=0, **{**params, **json.loads(args.vaekit_params)}).fit(frame.iloc[:N_FIT] if name == "det_mixed"
                                                                   else frame.iloc[:N_FIT].to_numpy(np.float32))
            fits[name] = time.perf_counter() - t0
            det.save(work / name)
        results["vaekit_fit_seconds"] = fits
        del df, mixed
        ctx = get_context("spawn")
        for kind in ("vaekit_file_csv", "vaekit_file_parquet", "vaekit_file_csv_mixed", "vaekit_memory",
                     "vaekit_memory_k1", "pyod_vae_memory"):
            with ProcessPoolExecutor(1, mp_context=ctx) as ex:
                r = ex.submit(task, kind, str(work), args.threads).result()
            results[kind] = r
            print(json.dumps(r), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    atomic_write_text(out / "throughput.json", json.dumps({**results, **prov}, indent=2))
    d = VAEAnomalyDetector()
    rows = [(f"vaekit score_file, CSV → CSV (default: {d.n_models} models, k = {d.k})", "vaekit_file_csv"),
            ("vaekit score_file, Parquet → CSV (default)", "vaekit_file_parquet"),
            ("vaekit score_file, mixed-type CSV (2 categorical + 2 binary columns)", "vaekit_file_csv_mixed"),
            ("vaekit decision_function, in memory (default)", "vaekit_memory"),
            ("vaekit decision_function, in memory (1 model, k = 1)", "vaekit_memory_k1"),
            ("PyOD VAE decision_function, in memory (defaults)", "pyod_vae_memory")]
    md = [f"# Scoring throughput: {args.rows:,} rows × 20 columns, {args.threads} threads\n",
          f"Detectors fitted on the first {N_FIT:,} rows (vaekit fit: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in results["vaekit_fit_seconds"].items())
          + f"; PyOD VAE fit {results['pyod_vae_memory'].get('fit_seconds', float('nan')):.1f} s). "
          "Peak RSS is the scoring process's own maximum resident memory.\n",
          "| what | rows/s | seconds | peak RSS (MB) |", "|---|---:|---:|---:|"]
    md += [f"| {label} | {results[k]['rows_per_s']:,.0f} | {results[k]['seconds']:.1f} | {results[k]['peak_rss_mb']:.0f} |"
           for label, k in rows]
    big = results["pyod_vae_memory"]["batch_10000"]
    md.append(f"| PyOD VAE decision_function, in memory, batch_size=10000 | {big['rows_per_s']:,.0f} | "
              f"{big['seconds']:.1f} | {big['peak_rss_mb']:.0f} |")
    atomic_write_text(out / "throughput.md", "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
