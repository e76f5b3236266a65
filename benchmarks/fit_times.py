"""Wall-clock of the default configurations on the issues' reference sizes, measured alone (no other job running).

* anomaly: ``VAEAnomalyDetector()`` fit (train the ensemble + score the training rows) and scoring of the test
  rows on shuttle (ADBench split, seed 1: 34,367 training rows); target fit ≤ 60 s on 2 cores;
* imputation: ``VAEImputer()`` fit + transform on white wine (4898 × 11, 50% MCAR, seed 0); target ≤ 60 s.

Each measurement is repeated ``--repeats`` times in this process with the estimators' default threads (vaekit's
runtime rule: 1 thread for these small networks unless OMP_NUM_THREADS says otherwise);
the median and all runs are written, with the 1-minute load average before each run (≈ 0 when alone).

    python benchmarks/fit_times.py --out benchmarks/results/fit_times.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anomaly_adbench import split  # noqa: E402
from impute_uci import load, mask  # noqa: E402
from provenance import provenance  # noqa: E402

from vaekit import VAEAnomalyDetector, VAEImputer
from vaekit.files import atomic_write_text


def timed(fn: Callable[[], dict[str, float]], repeats: int) -> dict[str, Any]:
    runs = []
    for _ in range(repeats):
        load_before = os.getloadavg()[0]
        runs.append(dict(fn(), load_1min_before=load_before))
    keys = [k for k in runs[0] if k != "load_1min_before"]
    return {"median": {k: float(np.median([r[k] for r in runs])) for k in keys}, "runs": runs}


def shuttle() -> dict[str, float]:
    x_tr, x_te, _, y_te = split("shuttle", 1)
    det = VAEAnomalyDetector(random_state=1)
    t0 = time.perf_counter()
    det.fit(x_tr)
    t1 = time.perf_counter()
    s = det.decision_function(x_te)
    t2 = time.perf_counter()
    from sklearn.metrics import roc_auc_score

    return {"fit_s": t1 - t0, "score_s": t2 - t1, "n_train": len(x_tr), "n_test": len(x_te),
            "roc_auc": float(roc_auc_score(y_te, s))}


def white_wine() -> dict[str, float]:
    x = load("wine_white")
    miss = mask(x, "mcar", 0)
    x_miss = np.where(miss, np.nan, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        imp = VAEImputer(random_state=0).fit(x_miss)
        t1 = time.perf_counter()
        x_hat = imp.transform(x_miss)
        t2 = time.perf_counter()
    return {"fit_s": t1 - t0, "transform_s": t2 - t1, "total_s": t2 - t0,
            "mse": float(np.mean((x_hat[miss] - x[miss]) ** 2))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/fit_times.json"))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--only", choices=["shuttle", "white_wine"], default=None)
    args = ap.parse_args()
    doc: dict[str, Any] = json.loads(args.out.read_text()) if args.out.is_file() else {}
    doc.update(platform=platform.platform(), torch=torch.__version__, threads=torch.get_num_threads(),
               cpus=os.cpu_count(), notes=__doc__.split("\n\n")[1].replace("\n", " "), **provenance())
    for name, fn in (("shuttle_anomaly", shuttle), ("white_wine_impute", white_wine)):
        if args.only and not name.startswith(args.only):
            continue
        doc[name] = timed(fn, args.repeats)
        print(name, json.dumps(doc[name]["median"]), flush=True)
        atomic_write_text(args.out, json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
