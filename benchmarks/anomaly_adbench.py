"""Benchmark: unsupervised anomaly detection on 11 ADBench "Classical" datasets, vaekit against PyOD.

ADBench protocol (Han et al. 2022): stratified 70/30 split (``train_test_split(stratify=y, random_state=seed)``),
labels unused in fit (the training part keeps its anomalies), MinMax scaling fitted on the training part, seeds
1, 2, 3, ROC-AUC and AUC-PR (average precision) on the test part. Every method runs with ONE configuration for
all datasets: vaekit's ``VAEAnomalyDetector()`` defaults, PyOD's defaults (IForest, ECOD, COPOD, KNN, PCA,
AutoEncoder, VAE), all in the same run on the same machine, timing fit and score separately.

    nice -n 10 python benchmarks/anomaly_adbench.py --out benchmarks/results/anomaly

Results are saved after every (dataset, seed) so an interrupted run resumes where it stopped (``--resume``).
Writes ``adbench.json`` (every run, the configurations, the machine) and ``adbench.md`` (tables).

The 11 shared sets chose vaekit's defaults: they are the DEVELOPMENT sets. ``--datasets heldout`` runs the held-out
sets fixed in ``benchmarks/anomaly_heldout_sets.py`` (built from scikit-learn's tables and ADBench's/PyOD's
generators; never to be used for choosing defaults, so ``--vaekit-params`` is refused on them).

``--setting semi`` is ADBench's semi-supervised setting (ADBench pull request #16, as used by Livernoche et al.'s
DTE code with ``test_size=0.5``): the normal rows in stored order, the first round(0.5 · n_normal) of them are the
training part (labels used only to pick normal rows), the other normal rows plus ALL anomalies the test part; the
split does not depend on the seed (the seed seeds the methods). MinMax is fitted on the training part as in the
unsupervised setting (DTE's copy uses StandardScaler). As in the unsupervised setting here, sets under 1,000 rows are
not duplicated up to 1,000 rows (ADBench's generator does that, which puts copies of rows on both sides).

    python benchmarks/anomaly_adbench.py --datasets heldout --threads 1 --tag adbench_heldout
    python benchmarks/anomaly_adbench.py --datasets heldout --setting semi --threads 1 --tag adbench_heldout_semi
    python benchmarks/anomaly_adbench.py --methods LOF,HBOS,CBLOF,MCD --threads 1 --tag adbench_newbaselines \\
        --merge benchmarks/results/anomaly/adbench.json
"""
from __future__ import annotations

import argparse
import contextlib
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
METHODS = ["vaekit", "IForest", "ECOD", "COPOD", "KNN", "PCA", "AutoEncoder", "VAE", "LOF", "HBOS", "CBLOF", "MCD"]
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "anomaly"
HERE = Path(__file__).resolve().parent
SETTINGS = {"unsup": "ADBench: stratified 70/30 split (seed), MinMax fitted on train, unsupervised, test ROC-AUC/AUC-PR",
            "semi": "ADBench semi-supervised (PR #16, test_size=0.5): train = first half of the normal rows in stored "
                    "order, test = the other normal rows + all anomalies; MinMax fitted on train; test ROC-AUC/AUC-PR"}


def heldout_sets():
    """The held-out module (benchmarks/anomaly_heldout_sets.py), imported by path."""
    import importlib.util

    if "anomaly_heldout_sets" in sys.modules:
        return sys.modules["anomaly_heldout_sets"]
    spec = importlib.util.spec_from_file_location("anomaly_heldout_sets", HERE / "anomaly_heldout_sets.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["anomaly_heldout_sets"] = mod
    spec.loader.exec_module(mod)
    return mod


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name in DATASETS:
        with np.load(DATA / f"{name}.npz") as f:
            return f["X"].astype(np.float64), f["y"].astype(int)
    X, y = heldout_sets().load(name)
    return X.astype(np.float64), y.astype(int)


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
    # ADBench's baseline wrapper builds these with no arguments (PyOD defaults); the seed is passed where the
    # method is random, as for IForest and PCA above.
    if method == "LOF":
        from pyod.models.lof import LOF

        return LOF()
    if method == "HBOS":
        from pyod.models.hbos import HBOS

        return HBOS()
    if method == "CBLOF":
        from pyod.models.cblof import CBLOF

        return CBLOF(random_state=seed)
    if method == "MCD":
        from pyod.models.mcd import MCD

        return MCD(random_state=seed)
    raise SystemExit(f"unknown method {method!r}")


def split(name: str, seed: int, setting: str = "unsup") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import MinMaxScaler

    X, y = load(name)
    if setting == "semi":
        normal, anomalies = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
        n_tr = round(0.5 * normal.size)
        tr, te = normal[:n_tr], np.append(normal[n_tr:], anomalies)
        X_tr, X_te, y_tr, y_te = X[tr], X[te], y[tr], y[te]
    else:
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    scaler = MinMaxScaler().fit(X_tr)
    return scaler.transform(X_tr), scaler.transform(X_te), y_tr, y_te


def run_one(method: str, name: str, seed: int, vaekit_params: dict[str, Any],
            setting: str = "unsup") -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    X_tr, X_te, _, y_te = split(name, seed, setting)
    det = make(method, seed, vaekit_params)
    t0 = time.perf_counter()
    try:
        det.fit(X_tr)
        t1 = time.perf_counter()
        s = np.asarray(det.decision_function(X_te), dtype=np.float64)
    except Exception as e:  # noqa: BLE001 - a baseline that fails on a set is recorded, not fatal (as ADBench)
        t = time.perf_counter() - t0
        return {"method": method, "dataset": name, "seed": seed, "roc_auc": float("nan"), "auc_pr": float("nan"),
                "fit_s": t, "score_s": 0.0, "n_train": len(X_tr), "n_test": len(X_te),
                "error": f"{type(e).__name__}: {e}"[:300]}
    t2 = time.perf_counter()
    s = np.nan_to_num(s, nan=np.nanmax(s[np.isfinite(s)]) if np.isfinite(s).any() else 0.0)
    return {"method": method, "dataset": name, "seed": seed, "roc_auc": float(roc_auc_score(y_te, s)),
            "auc_pr": float(average_precision_score(y_te, s)), "fit_s": t1 - t0, "score_s": t2 - t1,
            "n_train": len(X_tr), "n_test": len(X_te)}


def ranks(values: np.ndarray) -> np.ndarray:
    """Rank 1 = best (highest) per row, ties share the average rank."""
    from scipy.stats import rankdata

    return np.vstack([rankdata(-row, method="average") for row in values])


def tables(runs: list[dict[str, Any]], methods: list[str], datasets: list[str],
           seeds: list[int] | None = None) -> tuple[str, dict[str, Any]]:
    def cell(metric: str, seed: int | None = None, skip_failed: bool = False) -> np.ndarray:
        out = np.full((len(datasets), len(methods)), np.nan)
        for i, d in enumerate(datasets):
            for j, m in enumerate(methods):
                v = [r[metric] for r in runs if r["dataset"] == d and r["method"] == m
                     and (seed is None or r["seed"] == seed) and not (skip_failed and r.get("error"))]
                out[i, j] = np.mean(v) if v else np.nan
        return out

    def sd(metric: str) -> np.ndarray:
        out = np.full((len(datasets), len(methods)), np.nan)
        for i, d in enumerate(datasets):
            for j, m in enumerate(methods):
                v = [r[metric] for r in runs if r["dataset"] == d and r["method"] == m]
                out[i, j] = np.std(v, ddof=1) if len(v) > 1 else np.nan
        return out

    seeds = sorted({r["seed"] for r in runs}) if seeds is None else seeds
    lines, summary = [], {}
    for metric, title in (("roc_auc", "ROC-AUC ×100"), ("auc_pr", "AUC-PR ×100")):
        v, s = cell(metric), sd(metric)
        ok = ~np.isnan(v).any(1)
        rk = ranks(v[ok]) if ok.any() else np.full((0, len(methods)), np.nan)
        mean, avg_rank = np.nanmean(v[ok], 0), rk.mean(0)
        # the spread over seeds of the mean over datasets (each seed: one mean over the same datasets)
        per_seed = np.array([np.nanmean(cell(metric, sd_)[ok], 0) for sd_ in seeds])
        seed_sd = per_seed.std(0, ddof=1) if len(seeds) > 1 else np.full(len(methods), np.nan)
        summary[metric] = {m: {"mean": float(mean[j]), "avg_rank": float(avg_rank[j]),
                               "sd_over_seeds": float(seed_sd[j]),
                               "per_seed_mean": {str(sd_): float(per_seed[k, j]) for k, sd_ in enumerate(seeds)},
                               "rank_of_mean": int(1 + np.sum(mean > mean[j]))} for j, m in enumerate(methods)}
        summary[metric]["datasets_in_mean"] = [d for d, o in zip(datasets, ok) if o]
        if not ok.all():   # also the mean over ALL datasets, each method's failed runs left out
            va = cell(metric, skip_failed=True)
            mean_all = np.nanmean(va, 0)
            ps_all = np.array([np.nanmean(cell(metric, sd_, skip_failed=True), 0) for sd_ in seeds])
            sd_all = ps_all.std(0, ddof=1) if len(seeds) > 1 else np.full(len(methods), np.nan)
            for j, m in enumerate(methods):
                summary[metric][m].update({"mean_all_datasets": float(mean_all[j]),
                                           "sd_over_seeds_all_datasets": float(sd_all[j]),
                                           "rank_of_mean_all_datasets": int(1 + np.sum(mean_all > mean_all[j]))})
        lines += [f"\n### {title} (test, mean ± s.d. over seeds {seeds})\n",
                  "| dataset | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
        for i, d in enumerate(datasets):
            best = np.nanmax(v[i]) if not np.isnan(v[i]).all() else np.nan
            lines.append(f"| {d} | " + " | ".join(
                ("**{:.2f}**" if v[i, j] == best else "{:.2f}").format(100 * v[i, j])
                + ("" if np.isnan(s[i, j]) else f" ± {100 * s[i, j]:.2f}") for j in range(len(methods))) + " |")
        lines.append("| **mean** | " + " | ".join(f"**{100 * x:.2f}**" for x in mean) + " |")
        lines.append("| s.d. of the mean over seeds | " + " | ".join(f"{100 * x:.2f}" for x in seed_sd) + " |")
        lines.append("| avg. rank | " + " | ".join(f"{x:.2f}" for x in avg_rank) + " |")
        if not ok.all():
            lines.append(f"| **mean, all {len(datasets)} datasets** (failed runs left out) | " + " | ".join(
                f"**{100 * x:.2f}** ± {100 * y:.2f}" for x, y in zip(mean_all, sd_all)) + " |")
            lines.append(f"\n(mean, s.d. and avg. rank above over {int(ok.sum())} of {len(datasets)} datasets: some "
                         "run of a method failed on " + ", ".join(d for d, o in zip(datasets, ok) if not o)
                         + ", see Failures; the last row is the mean over all datasets with the failed runs left out)")
    fit, score = cell("fit_s"), cell("score_s")
    lines += ["\n### Time per run (seconds, mean of seeds): fit + score\n",
              "| dataset | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    for i, d in enumerate(datasets):
        lines.append(f"| {d} | " + " | ".join(f"{fit[i, j]:.2f} + {score[i, j]:.2f}" for j in range(len(methods))) + " |")
    lines.append(f"| **total ({len(datasets)} datasets)** | " + " | ".join(
        f"{np.nansum(fit[:, j]) + np.nansum(score[:, j]):.1f}" for j in range(len(methods))) + " |")
    summary["seconds"] = {m: {"fit": float(np.nansum(fit[:, j])), "score": float(np.nansum(score[:, j]))}
                          for j, m in enumerate(methods)}
    errors = [f"{r['method']} on {r['dataset']} seed {r['seed']}: {r['error']}" for r in runs if r.get("error")]
    if errors:
        lines += ["\n### Failures\n", *[f"- {e}" for e in errors]]
    summary["failures"] = errors
    return "\n".join(lines), summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/anomaly")
    ap.add_argument("--datasets", default=",".join(DATASETS),
                    help="comma list; 'dev' = the 11 development sets, 'heldout' = the held-out sets")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--setting", choices=sorted(SETTINGS), default="unsup",
                    help="unsup: ADBench's unsupervised setting; semi: fit on normal training rows only")
    ap.add_argument("--vaekit-params", default="{}", help="JSON overrides of VAEAnomalyDetector defaults (tuning "
                                                          "only; refused on held-out sets)")
    ap.add_argument("--heldout-check", action="store_true",
                    help="allow --vaekit-params on the held-out sets for the ONE held-out check of a candidate "
                         "already chosen on the development sets (recorded in the results' meta)")
    ap.add_argument("--tag", default="adbench", help="output file stem")
    ap.add_argument("--merge", default=None, help="a results JSON of the same protocol, seeds and datasets whose "
                                                  "runs of OTHER methods join the tables (they are not re-run)")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    held = list(heldout_sets().HELDOUT)
    datasets = [x for d in args.datasets.split(",") for x in
                (DATASETS if d == "dev" else held if d == "heldout" else [d])]
    methods = args.methods.split(",")
    unknown = [d for d in datasets if d not in DATASETS and d not in held]
    if unknown:
        raise SystemExit(f"unknown dataset(s) {unknown}")
    seeds, vparams = [int(s) for s in args.seeds.split(",")], json.loads(args.vaekit_params)
    if vparams and any(d in held for d in datasets) and not args.heldout_check:
        raise SystemExit("--vaekit-params is for development runs: the held-out sets must not choose defaults "
                         "(--heldout-check: the one held-out check of a candidate chosen on the development sets)")
    import torch

    from vaekit.files import atomic_write_text

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    from vaekit import VAEAnomalyDetector

    if "n_threads" in VAEAnomalyDetector().get_params() and "n_threads" not in vparams:
        vparams_run = {**vparams, "n_threads": args.threads}   # a runtime setting, not a model setting
    else:
        vparams_run = vparams
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{args.tag}.json"
    runs: list[dict[str, Any]] = []
    previous: dict[str, Any] = {}
    if args.resume and json_path.is_file():
        previous = json.loads(json_path.read_text())
        runs = previous["runs"]
    done = {(r["method"], r["dataset"], r["seed"]) for r in runs}
    sys.path.insert(0, str(HERE))
    from provenance import provenance

    meta = {"protocol": SETTINGS[args.setting], "setting": args.setting,
            "seeds": seeds, "datasets": datasets, "methods": methods, "threads": args.threads,
            "development_sets": DATASETS, "heldout_sets": [d for d in datasets if d in held],
            "vaekit_params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in
                              VAEAnomalyDetector(**vparams_run).get_params().items() if k != "random_state"},
            "vaekit_overrides": vparams, "heldout_check": bool(args.heldout_check),
            "python": sys.version.split()[0], "torch": torch.__version__,
            "pyod": __import__("pyod").__version__, "sklearn": __import__("sklearn").__version__,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    prov = provenance(argv, threads=args.threads)
    if previous.get("provenance"):   # a resumed run keeps the provenance of the run that made its first results
        prov = {"provenance": previous["provenance"],
                "resumed_by": [*previous.get("resumed_by", []), prov["provenance"]]}
    # one untimed fit per PyOD method on a tiny array first, so no timed run pays numba's JIT compilation
    warm = np.random.default_rng(0).random((64, 3))
    for m in methods:
        if m not in ("vaekit", "AutoEncoder", "VAE"):
            with contextlib.suppress(Exception):   # warm-up only
                make(m, 0, {}).fit(warm)
    t_all = time.perf_counter()
    for name in datasets:
        for seed in seeds:
            for m in methods:
                if (m, name, seed) in done:
                    continue
                r = run_one(m, name, seed, vparams_run, args.setting)
                runs.append(r)
                print(f"{name:12s} seed {seed} {m:12s} ROC-AUC {100 * r['roc_auc']:6.2f}  AUC-PR {100 * r['auc_pr']:6.2f}"
                      f"  fit {r['fit_s']:7.2f}s  score {r['score_s']:6.2f}s" + (f"  {r['error']}" if r.get("error")
                                                                                 else ""), flush=True)
            atomic_write_text(json_path, json.dumps({"meta": meta, **prov, "runs": runs}, indent=1))
    wall = time.perf_counter() - t_all + (previous.get("summary") or {}).get("wall_s", 0.0)
    table_runs, table_methods, merged = runs, methods, None
    if args.merge:
        other = json.loads(Path(args.merge).read_text())
        om = other["meta"]
        same = (om.get("protocol") == meta["protocol"] and om.get("seeds") == seeds
                and set(datasets) <= set(om.get("datasets", [])))
        if not same:
            raise SystemExit(f"--merge {args.merge}: not the same protocol, seeds and datasets")
        extra = [r for r in other["runs"] if r["method"] not in methods and r["dataset"] in datasets]
        extra_methods = [m for m in om["methods"] if m not in methods]
        table_runs, table_methods = extra + runs, extra_methods + methods
        merged = {"file": args.merge, "methods": extra_methods, "commit_of_file": other.get("provenance", {}).get(
            "commit"), "vaekit_params": om.get("vaekit_params")}
    md, summary = tables(table_runs, table_methods, datasets, seeds)
    shuttle = [r["fit_s"] for r in runs if r["method"] == "vaekit" and r["dataset"] == "shuttle"]
    summary["vaekit_shuttle_fit_s_max"] = max(shuttle) if shuttle else None
    summary["wall_s"] = wall
    if merged:
        summary["merged_from"] = merged
    atomic_write_text(json_path, json.dumps({"meta": meta, **prov, "summary": summary, "runs": runs}, indent=1))
    order = sorted(table_methods, key=lambda m: -summary["roc_auc"][m]["mean"])
    kind = ("held-out" if all(d in held for d in datasets) else "development" if all(d in DATASETS for d in datasets)
            else "development + held-out")
    head = [(f"# Anomaly detection, {'ADBench semi-supervised' if args.setting == 'semi' else 'ADBench'} protocol "
             f"({len(datasets)} {kind} datasets, seeds {seeds})\n"),
            (f"{meta['protocol']}. One configuration per method for every dataset (library defaults; vaekit: "
             f"`VAEAnomalyDetector()` defaults{' + overrides ' + json.dumps(vparams) if vparams else ''}). "
             f"{meta['machine']}, torch {meta['torch']}, PyOD {meta['pyod']}, {args.threads} threads; commit "
             f"{prov['provenance']['commit'][:10]}{' (dirty tree)' if prov['provenance']['dirty'] else ''}, load "
             f"average before {prov['provenance']['loadavg_before']}; wall {wall:.0f} s.\n"),
            "Ranking by mean ROC-AUC: " + ", ".join(
                f"{m} {100 * summary['roc_auc'][m]['mean']:.2f}"
                + ("" if np.isnan(summary['roc_auc'][m]['sd_over_seeds'])
                   else f" ± {100 * summary['roc_auc'][m]['sd_over_seeds']:.2f}") for m in order)]
    if merged:
        head.append(f"\nColumns {', '.join(merged['methods'])} are the runs recorded in `{args.merge}` (same protocol, "
                    f"seeds and datasets; not re-run here).")
    if shuttle:
        head.append(f"\nvaekit fit time on shuttle (34,367 training rows): max over seeds "
                    f"{summary['vaekit_shuttle_fit_s_max']:.1f} s.\n")
    atomic_write_text(out / f"{args.tag}.md", "\n".join(head) + "\n" + md + "\n")
    print("\n".join(head) + md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
