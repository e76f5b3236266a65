"""Benchmark: the MIWAE imputation protocol on six UCI datasets, vaekit's VAEImputer against scikit-learn baselines.

Protocol (Mattei & Frellsen 2019): standardise each dataset (full-data mean and sd), remove 50% of the entries
completely at random (MCAR: exactly ⌊n·p/2⌋ entries chosen uniformly, as in the MIWAE code; a row may lose all of
its entries), fit every method on the incomplete table and impute that same table (transductive), MSE over the
missing entries of the standardised data; seeds 0..4 (the seed draws the mask and seeds the methods).
MNAR self-masking scenario: an entry above its column's median is missing with probability 0.75, else 0.25.
GAIN scenario (``--scenarios gain``; Yoon et al. 2018 and their code, jsyoon0823/GAIN): the raw table, each entry
missing independently with probability 0.2; every method gets the incomplete table MinMax-scaled by the min and
max of its OBSERVED entries (as GAIN's ``normalization`` of the incomplete data); the score is GAIN's ``rmse_loss``:
the RMSE over the missing entries with truth and imputation both MinMax-scaled by the FULL data's min and max.

ONE configuration per method for all datasets, all in the same run on the same machine: ``VAEImputer()`` defaults
(``random_state=seed``), mean (``SimpleImputer``), ``KNNImputer()`` defaults, ``IterativeImputer(BayesianRidge())``
(max_iter 10), missForest = ``IterativeImputer(RandomForestRegressor(n_estimators=100, max_features="sqrt"),
max_iter=10)`` (missForest's defaults: 100 trees, √p candidate features per split, at most 10 iterations),
ExtraTrees = ``IterativeImputer(ExtraTreesRegressor(n_estimators=100), max_iter=10)`` (scikit-learn's defaults;
the tree ensembles run ``--threads`` jobs).
``vaekit_notmiwae`` (not in the default ``--methods``; meant for the MNAR scenario) is
``VAEImputer(missing_mechanism="self_masking")``, not-MIWAE, otherwise the same defaults.
Fit and transform are timed separately (wall clock, and this process's CPU time: on a shared machine the CPU time
is the steadier figure).

    nice -n 10 python benchmarks/impute_uci.py --out benchmarks/results/impute

Results are saved after every (scenario, dataset, seed), so ``--resume`` continues an interrupted run.
Writes ``impute_uci.json`` (every run, configurations, machine) and ``impute_uci.md`` (tables); ``--name NAME``
writes ``NAME.json``/``NAME.md`` instead (e.g. one method re-run at 1 thread:
``--methods vaekit --threads 1 --scenarios mcar --name impute_uci_vaekit``). ``--compare FILE.json`` adds the
per-dataset summaries of another results file for the methods this run lacks, as "METHOD (FILE)" columns, e.g.
``--methods vaekit,vaekit_notmiwae --scenarios mnar --seeds 0,1,2 --threads 1 --name impute_uci_notmiwae
--compare benchmarks/results/impute/impute_uci.json``.
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

DATASETS = ["banknote", "breast_wdbc", "concrete", "wine_red", "wine_white", "yeast"]
LABELS = {"banknote": "banknote", "breast_wdbc": "breast", "concrete": "concrete", "wine_red": "red wine",
          "wine_white": "white wine", "yeast": "yeast"}
PAPER = {"MIWAE (paper)": [0.446, 0.280, 0.501, 0.643, 0.735, 0.964],
         "missForest (paper)": [0.676, 0.291, 0.510, 0.697, 0.798, 1.41]}
METHODS = ["vaekit", "mean", "KNN", "IterativeImputer", "missForest", "ExtraTrees"]
EXTRA_METHODS = ["vaekit_notmiwae"]  # run when named in --methods
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tabular"


VAEKIT_PARAMS: dict[str, Any] = {}  # --vaekit-params: overrides of VAEImputer's defaults (e.g. a zoo model)


def make(method: str, seed: int, n_jobs: int = -1) -> Any:
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

    if method == "vaekit":
        from vaekit import VAEImputer

        return VAEImputer(random_state=seed, **VAEKIT_PARAMS)
    if method == "vaekit_notmiwae":
        from vaekit import VAEImputer

        return VAEImputer(random_state=seed, **{"missing_mechanism": "self_masking", **VAEKIT_PARAMS})
    if method == "mean":
        return SimpleImputer()
    if method == "KNN":
        return KNNImputer()
    if method == "IterativeImputer":
        from sklearn.linear_model import BayesianRidge

        return IterativeImputer(BayesianRidge(), max_iter=10, random_state=seed)
    if method == "missForest":
        from sklearn.ensemble import RandomForestRegressor

        forest = RandomForestRegressor(n_estimators=100, max_features="sqrt", n_jobs=n_jobs, random_state=seed)
        return IterativeImputer(forest, max_iter=10, random_state=seed)
    if method == "ExtraTrees":
        from sklearn.ensemble import ExtraTreesRegressor

        trees = ExtraTreesRegressor(n_estimators=100, n_jobs=n_jobs, random_state=seed)  # scikit-learn's defaults
        return IterativeImputer(trees, max_iter=10, random_state=seed)
    raise SystemExit(f"unknown method {method!r}")


def load_raw(name: str) -> np.ndarray:
    with np.load(DATA / f"{name}.npz") as f:
        return f["X"].astype(np.float64)


def load(name: str) -> np.ndarray:
    x = load_raw(name)
    return (x - x.mean(0)) / x.std(0)


def gain_inputs(x_raw: np.ndarray, miss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GAIN's protocol: (the table MinMax-scaled by its observed entries' min/max, the factor per column that takes an
    error in that space to the full data's MinMax space, range_observed / range_full)."""
    obs = np.where(miss, np.nan, x_raw)
    lo, hi = np.nanmin(obs, axis=0), np.nanmax(obs, axis=0)
    full = x_raw.max(0) - x_raw.min(0)
    return (x_raw - lo) / (hi - lo + 1e-6), (hi - lo + 1e-6) / (full + 1e-6)


def mask(x: np.ndarray, scenario: str, seed: int) -> np.ndarray:
    """True = missing. MCAR: ⌊n·p/2⌋ entries uniformly; MNAR: P(missing) = 0.75 above the column median, else 0.25."""
    rng = np.random.default_rng(seed)
    n, p = x.shape
    if scenario == "gain":
        return rng.random((n, p)) < 0.2
    if scenario == "mcar":
        m = np.zeros(n * p, dtype=bool)
        m[rng.choice(n * p, int(np.floor(n * p * 0.5)), replace=False)] = True
        return m.reshape(n, p)
    above = x > np.median(x, axis=0)
    return rng.random((n, p)) < np.where(above, 0.75, 0.25)


def run_one(method: str, x: np.ndarray, miss: np.ndarray, seed: int, scale: np.ndarray | None = None,
            n_jobs: int = -1) -> dict[str, Any]:
    """MSE over the missing entries (errors times ``scale`` per column first, when given; and then its root too)."""
    x_miss = np.where(miss, np.nan, x)
    est = make(method, seed, n_jobs)
    load_before = os.getloadavg()[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0, c0 = time.perf_counter(), time.process_time()
        est.fit(x_miss)
        t1, c1 = time.perf_counter(), time.process_time()
        x_hat = est.transform(x_miss)
        t2, c2 = time.perf_counter(), time.process_time()
    assert np.array_equal(x_hat[~miss], x[~miss]), f"{method} changed observed entries"
    err = (x_hat - x) * (1.0 if scale is None else scale)
    res = {"mse": float(np.mean(err[miss] ** 2)), "fit_s": t1 - t0, "transform_s": t2 - t1,
           "fit_cpu_s": c1 - c0, "transform_cpu_s": c2 - c1, "load_1min_before": load_before}
    if scale is not None:
        res["rmse"] = float(np.sqrt(res["mse"]))
    if method.startswith("vaekit"):
        res.update(steps=int(est.n_steps_), best_step=int(est.best_step_), batch_size=int(est.batch_size_))
    return res


def summarise(runs: list[dict[str, Any]], scenario: str, methods: list[str],
              other: dict[str, Any] | None = None) -> tuple[list[str], dict[str, Any]]:
    """Markdown table (mean ± sd of the MSE over seeds; best per dataset in bold) and the numbers behind it;
    ``other`` = (label, summary of this scenario in another results file) adds its methods missing here."""
    metric = "rmse" if scenario == "gain" else "mse"
    stats: dict[str, Any] = {}
    label, theirs = other or ("", {})
    shown = list(methods)
    for key, val in theirs.items():
        d, m = key.split("/", 1)
        if m not in methods:
            stats[f"{d}/{m} ({label})"] = val
            shown += [f"{m} ({label})"] if f"{m} ({label})" not in shown else []
    for d in DATASETS:
        for m in methods:
            v = [r[metric] for r in runs if r["scenario"] == scenario and r["dataset"] == d and r["method"] == m]
            t = [r["fit_s"] + r["transform_s"] for r in runs if r["scenario"] == scenario and r["dataset"] == d
                 and r["method"] == m]
            if v:
                stats[f"{d}/{m}"] = {metric: float(np.mean(v)), "sd": float(np.std(v)), "n": len(v),
                                     "seconds": float(np.mean(t))}
    extra = list(PAPER) if scenario == "mcar" else []
    lines = ["| dataset | " + " | ".join(shown + extra) + " |", "|---" * (1 + len(shown) + len(extra)) + "|"]
    for i, d in enumerate(DATASETS):
        cells = [stats.get(f"{d}/{m}") for m in shown]
        best = min((c[metric] for c in cells if c), default=None)
        row = []
        for c in cells:
            if c is None:
                row.append("–")
            else:
                txt = f"{c[metric]:.4f} ± {c['sd']:.4f}" if metric == "rmse" else f"{c[metric]:.3f} ± {c['sd']:.3f}"
                row.append(f"**{txt}**" if c[metric] == best else txt)
        row += [f"{PAPER[k][i]:.3f}" for k in extra]
        lines.append(f"| {LABELS[d]} | " + " | ".join(row) + " |")
    lines += ["", "Seconds per run (fit + transform, mean over seeds):", "",
              "| dataset | " + " | ".join(shown) + " |", "|---" * (1 + len(shown)) + "|"]
    for d in DATASETS:
        cells = [stats.get(f"{d}/{m}") for m in shown]
        lines.append(f"| {LABELS[d]} | " + " | ".join("–" if c is None else f"{c['seconds']:.1f}" for c in cells) + " |")
    return lines, stats


def write(out: Path, doc: dict[str, Any], methods: list[str], name: str = "impute_uci",
          compare: Path | None = None) -> None:
    from vaekit.files import atomic_write_text

    lines = ["# Imputation benchmark: MIWAE protocol on six UCI datasets", "",
             "MSE on the missing entries of the standardised data (lower is better; the GAIN protocol: RMSE in "
             "MinMax units), mean ± sd over seeds "
             f"{doc['seeds']}; produced by `benchmarks/impute_uci.py` (see its docstring for the protocol).", ""]
    doc["summary"] = {}
    for sc, title in (("mcar", "50% MCAR"), ("mnar", "MNAR self-masking (P(missing) 0.75 above the median, 0.25 below)"),
                      ("gain", "GAIN protocol (MinMax scaling, 20% MCAR): RMSE on the missing entries")):
        if any(r["scenario"] == sc for r in doc["runs"]):
            other = (compare.stem, json.loads(compare.read_text()).get("summary", {}).get(sc, {})) if compare else None
            table, stats = summarise(doc["runs"], sc, methods, other)
            doc["summary"][sc] = {k: v for k, v in stats.items() if k.split("/", 1)[1] in methods}
            rates = [r["missing_rate"] for r in doc["runs"] if r["scenario"] == sc]
            lines += [f"## {title}", "", f"Missing rate {np.mean(rates):.3f} on average.", "", *table, ""]
    vt = [r["fit_s"] + r["transform_s"] for r in doc["runs"] if r["method"] == "vaekit" and r["dataset"] == "wine_white"
          and r["scenario"] == "mcar"]
    if vt:
        lines += [f"VAEImputer on white wine (4898 × 11): fit + transform {np.mean(vt):.1f} s mean, {np.max(vt):.1f} s max "
                  f"({doc['machine']['cpus']} cores, torch threads {doc['machine']['torch_threads']}; the machine was "
                  "shared, see `load_1min_before` per run in the JSON).", ""]
    lines += ["Configurations: " + json.dumps(doc["configs"]), ""]
    atomic_write_text(out / f"{name}.json", json.dumps(doc, indent=1))
    atomic_write_text(out / f"{name}.md", "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/impute"))
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--scenarios", default="mcar,mnar")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--name", default="impute_uci", help="file stem of the results (NAME.json, NAME.md)")
    ap.add_argument("--compare", type=Path, default=None, help="another results .json: its methods as extra columns")
    ap.add_argument("--vaekit-params", default="{}", help="JSON overrides of VAEImputer's defaults for the vaekit "
                    "methods, e.g. '{\"prior\": \"mog\"}' (a model-zoo comparison; use with --name)")
    args = ap.parse_args()
    VAEKIT_PARAMS.update(json.loads(args.vaekit_params))
    import sklearn
    import torch

    torch.set_num_threads(args.threads)
    from vaekit import VAEImputer

    methods, seeds = args.methods.split(","), [int(s) for s in args.seeds.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.name}.json"
    doc: dict[str, Any] = {"runs": []}
    if args.resume and path.is_file():
        doc = json.loads(path.read_text())
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from provenance import provenance

    prov = provenance(threads=args.threads)["provenance"]  # a resumed run keeps the first invocation's, and adds its own
    doc["provenance"] = doc.get("provenance") or prov
    if doc["provenance"] is not prov:
        doc["resumed_by"] = [*doc.get("resumed_by", []), prov]
    doc.update(seeds=seeds, configs={m: repr(make(m, 0)) for m in methods} | {
        "vaekit_params": {k: repr(v) for k, v in VAEImputer().get_params().items()}},
        machine={"platform": platform.platform(), "python": sys.version.split()[0], "cpus": os.cpu_count(),
                 "torch": torch.__version__, "sklearn": sklearn.__version__, "torch_threads": torch.get_num_threads()})
    done = {(r["scenario"], r["dataset"], r["seed"], r["method"]) for r in doc["runs"]}
    for sc in args.scenarios.split(","):
        for name in args.datasets.split(","):
            x = load_raw(name) if sc == "gain" else load(name)
            for seed in seeds:
                miss = mask(x, sc, seed)
                x_in, scale = gain_inputs(x, miss) if sc == "gain" else (x, None)
                for m in methods:
                    if (sc, name, seed, m) in done:
                        continue
                    res = run_one(m, x_in, miss, seed, scale, args.threads)
                    doc["runs"].append({"scenario": sc, "dataset": name, "seed": seed, "method": m,
                                        "n": x.shape[0], "d": x.shape[1], "missing_rate": float(miss.mean()), **res})
                    print(f"{sc} {name} seed {seed} {m}: mse {res['mse']:.4f} rmse {res.get('rmse', float('nan')):.4f} fit {res['fit_s']:.1f}s "
                          f"transform {res['transform_s']:.1f}s", flush=True)
                write(args.out, doc, methods, args.name, args.compare)
    write(args.out, doc, methods, args.name, args.compare)


if __name__ == "__main__":
    main()
