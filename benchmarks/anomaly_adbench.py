"""Benchmark: unsupervised anomaly detection on 11 ADBench "Classical" datasets, vaekit against PyOD.

ADBench protocol (Han et al. 2022): stratified 70/30 split (``train_test_split(stratify=y, random_state=seed)``),
labels unused in fit (the training part keeps its anomalies), MinMax scaling fitted on the training part, seeds
1, 2, 3, ROC-AUC and AUC-PR (average precision) on the test part. Every method runs with ONE configuration for
all datasets: vaekit's ``VAEAnomalyDetector()`` defaults, PyOD's defaults (IForest, ECOD, COPOD, KNN, PCA,
AutoEncoder, VAE), all in the same run on the same machine, timing fit and score separately.

    nice -n 10 python benchmarks/anomaly_adbench.py --out benchmarks/results/anomaly

Results are saved after every (dataset, seed) so an interrupted run resumes where it stopped (``--resume``).
Writes ``adbench.json`` (every run, the configurations, the machine) and ``adbench.md`` (tables).
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
from typing import Any

import numpy as np

DATASETS = ["annthyroid", "breastw", "cardio", "glass", "ionosphere", "mammography", "pendigits", "satellite",
            "satimage-2", "shuttle", "thyroid"]
METHODS = ["vaekit", "IForest", "ECOD", "COPOD", "KNN", "PCA", "AutoEncoder", "VAE"]
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "anomaly"


def make(method: str, seed: int, vaekit_params: dict[str, Any]) -> Any:
    """One detector with its library's defaults (vaekit: VAEAnomalyDetector defaults unless overridden)."""
    if method == "vaekit":
        from vaekit import VAEAnomalyDetector

        return VAEAnomalyDetector(random_state=seed, **vaekit_params)
    if method == "IForest":
        from pyod.models.iforest import IForest

        return IForest(random_state=seed)
    if method == "ECOD":
        from pyod.models.ecod import ECOD

        return ECOD()
    if method == "COPOD":
        from pyod.models.copod import COPOD

        return COPOD()
    if method == "KNN":
        from pyod.models.knn import KNN

        return KNN()
    if method == "PCA":
        from pyod.models.pca import PCA

        return PCA(random_state=seed)
    if method == "AutoEncoder":
        from pyod.models.auto_encoder import AutoEncoder

        return AutoEncoder(random_state=seed, verbose=0)
    if method == "VAE":
        from pyod.models.vae import VAE

        return VAE(random_state=seed, verbose=0)
    raise SystemExit(f"unknown method {method!r}")


def split(name: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import MinMaxScaler

    with np.load(DATA / f"{name}.npz") as f:
        X, y = f["X"].astype(np.float64), f["y"].astype(int)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    scaler = MinMaxScaler().fit(X_tr)
    return scaler.transform(X_tr), scaler.transform(X_te), y_tr, y_te


def run_one(method: str, name: str, seed: int, vaekit_params: dict[str, Any]) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    X_tr, X_te, _, y_te = split(name, seed)
    det = make(method, seed, vaekit_params)
    t0 = time.perf_counter()
    det.fit(X_tr)
    t1 = time.perf_counter()
    s = np.asarray(det.decision_function(X_te), dtype=np.float64)
    t2 = time.perf_counter()
    s = np.nan_to_num(s, nan=np.nanmax(s[np.isfinite(s)]) if np.isfinite(s).any() else 0.0)
    return {"method": method, "dataset": name, "seed": seed, "roc_auc": float(roc_auc_score(y_te, s)),
            "auc_pr": float(average_precision_score(y_te, s)), "fit_s": t1 - t0, "score_s": t2 - t1,
            "n_train": len(X_tr), "n_test": len(X_te)}


def ranks(values: np.ndarray) -> np.ndarray:
    """Rank 1 = best (highest) per row, ties share the average rank."""
    from scipy.stats import rankdata

    return np.vstack([rankdata(-row, method="average") for row in values])


def tables(runs: list[dict[str, Any]], methods: list[str], datasets: list[str]) -> tuple[str, dict[str, Any]]:
    def cell(metric: str) -> np.ndarray:
        out = np.full((len(datasets), len(methods)), np.nan)
        for i, d in enumerate(datasets):
            for j, m in enumerate(methods):
                v = [r[metric] for r in runs if r["dataset"] == d and r["method"] == m]
                out[i, j] = np.mean(v) if v else np.nan
        return out

    lines, summary = [], {}
    for metric, title in (("roc_auc", "ROC-AUC ×100"), ("auc_pr", "AUC-PR ×100")):
        v = cell(metric)
        ok = ~np.isnan(v).any(1)
        rk = ranks(v[ok]) if ok.any() else np.full((0, len(methods)), np.nan)
        mean, avg_rank = np.nanmean(v[ok], 0), rk.mean(0)
        summary[metric] = {m: {"mean": float(mean[j]), "avg_rank": float(avg_rank[j])} for j, m in enumerate(methods)}
        lines += [f"\n### {title} (test, mean of seeds)\n", "| dataset | " + " | ".join(methods) + " |",
                  "|---|" + "---:|" * len(methods)]
        for i, d in enumerate(datasets):
            best = np.nanmax(v[i]) if not np.isnan(v[i]).all() else np.nan
            lines.append(f"| {d} | " + " | ".join(
                ("**{:.2f}**" if v[i, j] == best else "{:.2f}").format(100 * v[i, j]) for j in range(len(methods))) + " |")
        lines.append("| **mean** | " + " | ".join(f"**{100 * x:.2f}**" for x in mean) + " |")
        lines.append("| avg. rank | " + " | ".join(f"{x:.2f}" for x in avg_rank) + " |")
    fit, score = cell("fit_s"), cell("score_s")
    lines += ["\n### Time per run (seconds, mean of seeds): fit + score\n",
              "| dataset | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    for i, d in enumerate(datasets):
        lines.append(f"| {d} | " + " | ".join(f"{fit[i, j]:.2f} + {score[i, j]:.2f}" for j in range(len(methods))) + " |")
    lines.append("| **total (11 datasets)** | " + " | ".join(f"{np.nansum(fit[:, j]) + np.nansum(score[:, j]):.1f}"
                                                         for j in range(len(methods))) + " |")
    summary["seconds"] = {m: {"fit": float(np.nansum(fit[:, j])), "score": float(np.nansum(score[:, j]))}
                          for j, m in enumerate(methods)}
    return "\n".join(lines), summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/anomaly")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--vaekit-params", default="{}", help="JSON overrides of VAEAnomalyDetector defaults (tuning only)")
    ap.add_argument("--tag", default="adbench", help="output file stem")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    import torch

    from vaekit.files import atomic_write_text

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    datasets, methods = args.datasets.split(","), args.methods.split(",")
    seeds, vparams = [int(s) for s in args.seeds.split(",")], json.loads(args.vaekit_params)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{args.tag}.json"
    runs: list[dict[str, Any]] = []
    if args.resume and json_path.is_file():
        runs = json.loads(json_path.read_text())["runs"]
    done = {(r["method"], r["dataset"], r["seed"]) for r in runs}
    from vaekit import VAEAnomalyDetector

    meta = {"protocol": "ADBench: stratified 70/30 split (seed), MinMax fitted on train, unsupervised, test ROC-AUC/AUC-PR",
            "seeds": seeds, "datasets": datasets, "methods": methods, "threads": args.threads,
            "vaekit_params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in
                              VAEAnomalyDetector(**vparams).get_params().items() if k != "random_state"},
            "vaekit_overrides": vparams, "python": sys.version.split()[0], "torch": torch.__version__,
            "pyod": __import__("pyod").__version__, "sklearn": __import__("sklearn").__version__,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    t_all = time.perf_counter()
    for name in datasets:
        for seed in seeds:
            for m in methods:
                if (m, name, seed) in done:
                    continue
                r = run_one(m, name, seed, vparams)
                runs.append(r)
                print(f"{name:12s} seed {seed} {m:12s} ROC-AUC {100 * r['roc_auc']:6.2f}  AUC-PR {100 * r['auc_pr']:6.2f}"
                      f"  fit {r['fit_s']:7.2f}s  score {r['score_s']:6.2f}s", flush=True)
            atomic_write_text(json_path, json.dumps({"meta": meta, "runs": runs}, indent=1))
    md, summary = tables(runs, methods, datasets)
    shuttle = [r["fit_s"] for r in runs if r["method"] == "vaekit" and r["dataset"] == "shuttle"]
    summary["vaekit_shuttle_fit_s_max"] = max(shuttle) if shuttle else None
    summary["wall_s"] = time.perf_counter() - t_all
    atomic_write_text(json_path, json.dumps({"meta": meta, "summary": summary, "runs": runs}, indent=1))
    order = sorted(methods, key=lambda m: -summary["roc_auc"][m]["mean"])
    head = [f"# Anomaly detection, ADBench protocol ({len(datasets)} datasets, seeds {seeds})\n",
            f"{meta['protocol']}. One configuration per method for every dataset (library defaults; vaekit: "
            f"`VAEAnomalyDetector()` defaults{' + overrides ' + json.dumps(vparams) if vparams else ''}). "
            f"{meta['machine']}, torch {meta['torch']}, PyOD {meta['pyod']}, {args.threads} threads.\n",
            "Ranking by mean ROC-AUC: " + ", ".join(f"{m} {100 * summary['roc_auc'][m]['mean']:.2f}" for m in order),
            f"\nvaekit fit time on shuttle (34,367 training rows): max over seeds "
            f"{summary['vaekit_shuttle_fit_s_max'] or float('nan'):.1f} s.\n"]
    atomic_write_text(out / f"{args.tag}.md", "\n".join(head) + md + "\n")
    print("\n".join(head) + md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
