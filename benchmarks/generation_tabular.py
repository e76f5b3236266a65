"""Tabular generation (issue 6): vaekit's TabularGenerator against CTGAN's TVAE on six UCI tables, same run.

For each table in ../shared/data/tabular (features + its target column): one seeded 80/20 split (stratified for
class targets). Every generator is fitted on the real training rows (features and target) and draws as many rows.
* ML efficacy (train on synthetic, test on real): a RandomForest (100 trees) fitted on the synthetic rows predicts
  the target of the real test rows; macro-F1 (class targets) or R² (concrete); "real" = the same forest fitted on
  the real training rows (the ceiling).
* Distribution distances to the real TEST rows (held out from every generator): per feature the 1-Wasserstein
  distance in units of the real training sd (mean over features), total variation of the target's classes
  (class targets), mean |Δ| of the Pearson correlation matrix; "real" = the training rows themselves (the floor).
Generators: ``vaekit`` (unconditional TabularGenerator, target declared categorical for class targets),
``vaekit_cond`` (conditioned on the target; targets drawn from the training rows, features from p(x | y)),
``tvae`` (ctgan.TVAE, its default architecture, 300 epochs, batch 500; target a discrete column).
Runtime cap (≤ 15 min on 1 busy CPU thread): each vaekit fit runs ``--max-steps`` (default 1500) Adam steps, with
``--time-limit`` s (default 45) as a safety stop (a fit stopped by it is marked ``stopped: time_limit``); TVAE runs
``--tvae-epochs`` (default 300, its own default) epochs.

    OMP_NUM_THREADS=1 python benchmarks/generation_tabular.py --out benchmarks/results/generation
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from vaekit.files import atomic_write_text
from vaekit.jobs.generate.tabular import TabularGenerator

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "tabular"
TABLES = ("banknote", "breast_wdbc", "concrete", "wine_red", "wine_white", "yeast")
GENERATORS = ("vaekit", "vaekit_cond", "tvae")


def load(name: str) -> tuple[pd.DataFrame, str, str]:
    """The table as a DataFrame (features float32 + target), the target's name and the task (class | regression)."""
    d = np.load(SHARED / f"{name}.npz")
    df = pd.DataFrame(d["X"], columns=[str(c) for c in d["feature_names"]])
    target = str(d["target_name"])
    if np.issubdtype(d["y"].dtype, np.integer):
        df[target] = d["class_names"][d["y"]] if "class_names" in d.files else d["y"]
        return df, target, "class"
    df[target] = d["y"].astype(np.float32)
    return df, target, "regression"


def efficacy(train: pd.DataFrame, test: pd.DataFrame, target: str, task: str, seed: int) -> dict[str, float]:
    """Train a RandomForest on ``train``, score on ``test``: macro-F1 and accuracy, or R²."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.metrics import accuracy_score, f1_score, r2_score

    feats = [c for c in train.columns if c != target]
    xtr, xte = train[feats].to_numpy(np.float64), test[feats].to_numpy(np.float64)
    if task == "class":
        ytr, yte = train[target].astype(str).to_numpy(), test[target].astype(str).to_numpy()
        if len(set(ytr)) < 2:
            return {"score": 0.0, "macro_f1": 0.0, "accuracy": float((yte == ytr[0]).mean())}
        pred = RandomForestClassifier(100, random_state=seed, n_jobs=1).fit(xtr, ytr).predict(xte)
        f1 = float(f1_score(yte, pred, average="macro"))
        return {"score": f1, "macro_f1": f1, "accuracy": float(accuracy_score(yte, pred))}
    forest = RandomForestRegressor(100, random_state=seed, n_jobs=1)
    pred = forest.fit(xtr, train[target].to_numpy(np.float64)).predict(xte)
    r2 = float(r2_score(test[target].to_numpy(np.float64), pred))
    return {"score": r2, "r2": r2}


def distances(synth: pd.DataFrame, real: pd.DataFrame, ref: pd.DataFrame, target: str, task: str) -> dict[str, Any]:
    """Per-feature W1 / sd(ref), TV of the target classes, mean |Δ corr| between ``synth`` and ``real``."""
    from scipy.stats import wasserstein_distance

    cont = [c for c in real.columns if not (c == target and task == "class")]
    w = {c: float(wasserstein_distance(synth[c].astype(float), real[c].astype(float))
                  / (ref[c].astype(float).std() or 1.0)) for c in cont}
    out: dict[str, Any] = {"wasserstein_mean": float(np.mean(list(w.values()))), "wasserstein": w}
    if task == "class":
        p = synth[target].astype(str).value_counts(normalize=True)
        q = real[target].astype(str).value_counts(normalize=True)
        out["tv_target"] = float(0.5 * p.reindex(p.index.union(q.index), fill_value=0).sub(
            q.reindex(p.index.union(q.index), fill_value=0)).abs().sum())
    cs, cr = synth[cont].astype(float).corr().to_numpy(), real[cont].astype(float).corr().to_numpy()
    iu = np.triu_indices(len(cont), 1)
    out["corr_diff"] = float(np.nanmean(np.abs(np.nan_to_num(cs[iu]) - cr[iu])))
    return out


def fit_vaekit(train: pd.DataFrame, target: str, task: str, seed: int, max_steps: int, time_limit: float,
               conditional: bool, info: dict[str, Any], params: dict[str, Any] | None = None) -> pd.DataFrame:
    kinds = {target: "categorical"} if task == "class" else None
    gen = TabularGenerator(condition_columns=[target] if conditional else (), column_kinds=kinds, max_steps=max_steps,
                           time_limit_min=time_limit / 60.0, random_state=seed,
                           **(params or {})).fit(train)  # seconds → minutes
    info.update(epochs=len(gen.history_.epochs), stopped=gen.history_.stopped)
    return gen.sample(len(train), random_state=seed)


def fit_tvae(train: pd.DataFrame, target: str, task: str, seed: int, epochs: int) -> pd.DataFrame:
    from ctgan import TVAE

    torch.manual_seed(seed)
    np.random.seed(seed)
    model = TVAE(epochs=epochs, cuda=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(train, discrete_columns=[target] if task == "class" else ())
        torch.manual_seed(seed + 1)
        return model.sample(len(train))


def run_table(name: str, args: argparse.Namespace) -> dict[str, Any]:
    from sklearn.model_selection import train_test_split

    df, target, task = load(name)
    strat = df[target] if task == "class" else None
    train, test = train_test_split(df, test_size=0.2, random_state=args.seed, stratify=strat)
    train, test = train.reset_index(drop=True), test.reset_index(drop=True)
    res: dict[str, Any] = {"rows": len(df), "features": df.shape[1] - 1, "target": target, "task": task,
                           "metric": "macro_f1" if task == "class" else "r2", "n_train": len(train),
                           "n_test": len(test)}
    res["real"] = {"efficacy": efficacy(train, test, target, task, args.seed),
                   "distance": distances(train, test, train, target, task), "seconds": 0.0}
    info: dict[str, Any] = {}
    makers: dict[str, Callable[[], pd.DataFrame]] = {
        "vaekit": lambda: fit_vaekit(train, target, task, args.seed, args.max_steps, args.time_limit, False, info,
                                      args.vaekit_params),
        "vaekit_cond": lambda: fit_vaekit(train, target, task, args.seed, args.max_steps, args.time_limit, True, info,
                                           args.vaekit_params),
        "tvae": lambda: fit_tvae(train, target, task, args.seed, args.tvae_epochs)}
    for g in args.generators:
        info.clear()
        t0 = time.perf_counter()
        synth = makers[g]()
        secs = time.perf_counter() - t0
        synth = synth[list(train.columns)]
        res[g] = {"efficacy": efficacy(synth, test, target, task, args.seed),
                  "distance": distances(synth, test, train, target, task), "seconds": secs, **info}
        print(f"{name:12s} {g:12s} {res['metric']} {res[g]['efficacy']['score']:.4f}  "
              f"W1 {res[g]['distance']['wasserstein_mean']:.4f}  {secs:.1f} s", flush=True)
    return res


def markdown(results: dict[str, Any], config: dict[str, Any]) -> str:
    gens = ["real", *config["generators"]]
    lines = ["# Tabular generation: vaekit vs CTGAN's TVAE", "",
             "Train on synthetic, test on real (RandomForest, 100 trees; macro-F1 for class targets, R² for "
             "concrete), "
             "and distances to the held-out real test rows (W1 per feature in training-sd units, mean over features; "
             "TV of the target classes; mean |Δ| of the correlation matrix). 'real' = trained on the real training "
             f"rows. One 80/20 split, seed {config['seed']}; vaekit {config['max_steps']} steps per fit (safety stop "
             f"{config['time_limit']:.0f} s), TVAE {config['tvae_epochs']} epochs; 1 CPU thread; total "
             f"{config['seconds']:.0f} s.", "",
             "| table | metric | " + " | ".join(gens) + " |", "|---|---|" + "---|" * len(gens)]
    for name, r in results.items():
        cells = " | ".join(f"{r[g]['efficacy']['score']:.3f}" for g in gens)
        lines.append(f"| {name} | {r['metric']} | {cells} |")
    lines += ["", "| table | W1 mean / TV target / Δcorr / seconds | " + " | ".join(gens) + " |",
              "|---|---|" + "---|" * len(gens)]
    for name, r in results.items():
        cells = []
        for g in gens:
            d = r[g]["distance"]
            tv = f"{d['tv_target']:.3f}" if "tv_target" in d else "–"
            cells.append(f"{d['wasserstein_mean']:.3f} / {tv} / {d['corr_diff']:.3f} / {r[g]['seconds']:.0f}")
        lines.append(f"| {name} | | " + " | ".join(cells) + " |")
    capped = [f"{name}/{g}" for name, r in results.items() for g in gens if r[g].get("stopped") == "time_limit"]
    lines += ["", f"vaekit fits stopped by the safety time limit: {', '.join(capped) or 'none'}."]
    if "vaekit" in gens and "tvae" in gens:
        lines.append("")
        for g in [x for x in ("vaekit", "vaekit_cond") if x in gens]:
            wins = sum(r[g]["efficacy"]["score"] >= r["tvae"]["efficacy"]["score"] for r in results.values())
            mean = np.mean([r[g]["efficacy"]["score"] - r["tvae"]["efficacy"]["score"] for r in results.values()])
            lines.append(f"- {g}: efficacy ≥ TVAE's on {wins} of {len(results)} tables; mean difference {mean:+.3f}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/generation")
    ap.add_argument("--tables", default=",".join(TABLES))
    ap.add_argument("--generators", default=",".join(GENERATORS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-steps", type=int, default=1500, help="Adam steps per vaekit fit")
    ap.add_argument("--time-limit", type=float, default=45.0, help="safety stop, seconds per vaekit fit")
    ap.add_argument("--tvae-epochs", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--vaekit-params", default="{}", help="JSON overrides of TabularGenerator's defaults for the "
                    "vaekit generators, e.g. '{\"prior\": \"mog\"}' (a model-zoo comparison)")
    args = ap.parse_args(argv)
    args.generators = [g for g in args.generators.split(",") if g]
    args.vaekit_params = json.loads(args.vaekit_params)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from provenance import provenance

    prov = provenance(threads=args.threads)  # before the run: its load average is the one the run met
    out = Path(args.out)
    t0 = time.perf_counter()
    results = {}
    config = {k: v for k, v in vars(args).items()}
    for name in [t for t in args.tables.split(",") if t]:
        results[name] = run_table(name, args)
        config["seconds"] = time.perf_counter() - t0
        atomic_write_text(out / "tabular.json", json.dumps({"config": config, "results": results, **prov}, indent=2))
        atomic_write_text(out / "tabular.md", markdown(results, config))
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
