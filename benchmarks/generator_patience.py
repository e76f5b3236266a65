"""How TabularGenerator's early stopping (patience P epochs without a better held-out ELBO) changes the kept model.

    python benchmarks/generator_patience.py --out benchmarks/results/generation/patience.json

A fit with patience P follows the trajectory of a fit without it until it stops (same seed, same schedule), so one
fit per table without early stopping tells, for every P, where it would have stopped and which epoch keep-best would
have kept. Fits: the six tables of generation_tabular.py (its 80/20 split), unconditional and conditioned on the
target, at the benchmark's 1,500 steps (seeds 0, 1, 2) and at the default 4,000 steps (seed 0); one thread.
Reported per P: fits whose kept epoch is the one a fit to the end keeps, the worst held-out ELBO given up
(nats per row), and the share of epochs saved.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generation_tabular import TABLES, load  # noqa: E402
from provenance import provenance  # noqa: E402

from vaekit.files import atomic_write_text  # noqa: E402
from vaekit.jobs.generate.tabular import TabularGenerator  # noqa: E402

PATIENCES = (10, 20, 30, 40, 50)


def stop_and_keep(val: list[float], patience: int) -> tuple[int, int]:
    """(epochs run, epoch kept) under the trainer's rule: stop once `patience` epochs in a row are no better."""
    best, kept = -np.inf, -1
    for i, v in enumerate(val):
        if v > best:
            best, kept = v, i
        elif i - kept >= patience:
            return i + 1, kept
    return len(val), kept


def fit_history(name: str, conditional: bool, steps: int, seed: int) -> dict[str, Any]:
    from sklearn.model_selection import train_test_split

    df, target, task = load(name)
    train, _ = train_test_split(df, test_size=0.2, random_state=seed, stratify=df[target] if task == "class" else None)
    t = time.perf_counter()
    gen = TabularGenerator(condition_columns=[target] if conditional else (), early_stopping=0, max_steps=steps,
                           column_kinds={target: "categorical"} if task == "class" else None,
                           random_state=seed).fit(train.reset_index(drop=True))
    return {"table": name, "conditional": conditional, "steps": steps, "seed": seed,
            "seconds": round(time.perf_counter() - t, 2), "val_elbo": [e["val_elbo"] for e in gen.history_.epochs]}


def summarize(fits: list[dict[str, Any]], label: Callable[[dict[str, Any]], str] | None = None) -> dict[str, Any]:
    """Per patience: fits whose kept epoch is the uninterrupted fit's, the worst held-out ELBO given up, the mean
    share of epochs saved, and each changed fit (named by ``label``) — from each fit's ``val_elbo`` per epoch."""
    label = label or (lambda f: f"{f['table']}{' (cond)' if f['conditional'] else ''}, {f['steps']} steps, seed "
                                f"{f['seed']}")
    out: dict[str, Any] = {}
    for p in PATIENCES:
        same, lost, saved, changed = 0, [], [], []
        for f in fits:
            v = f["val_elbo"]
            full_kept = int(np.argmax(v))
            ran, kept = stop_and_keep(v, p)
            same += kept == full_kept
            lost.append(v[full_kept] - v[kept])
            saved.append(1 - ran / len(v))
            if kept != full_kept:
                changed.append(f"{label(f)}: epoch {kept} of {ran} kept, not {full_kept}; held-out ELBO "
                               f"{v[kept]:.3f} vs {v[full_kept]:.3f}")
        out[str(p)] = {"same_model": same, "fits": len(fits), "worst_elbo_given_up": round(max(lost), 4),
                       "epochs_saved_mean": round(float(np.mean(saved)), 3), "changed": changed}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", default="0,1,2", help="Seeds at the benchmark's 1,500 steps (4,000 steps: seed 0).")
    args = ap.parse_args()
    torch.set_num_threads(1)
    prov = provenance(threads=1)
    runs = [(1500, int(s)) for s in args.seeds.split(",")] + [(4000, 0)]
    fits = []
    for steps, seed in runs:
        for name in TABLES:
            for cond in (False, True):
                fits.append(fit_history(name, cond, steps, seed))
                print(f"{name} cond={cond} steps={steps} seed={seed}: {len(fits[-1]['val_elbo'])} epochs, "
                      f"best {int(np.argmax(fits[-1]['val_elbo']))}, {fits[-1]['seconds']} s", flush=True)
    write(args.out, fits, "by_budget", lambda f: str(f["steps"]), None, __doc__, prov)
    return 0


def write(out: Path, fits: list[dict[str, Any]], group_key: str, group: Callable[[dict[str, Any]], str],
          label: Callable[[dict[str, Any]], str] | None, doc: str, prov: dict[str, Any]) -> None:
    """OUT: the summary over all fits and per group (``group_key``: {group: summary}), the fits, the notes (DOC's
    second paragraph) and the provenance; the summary printed."""
    groups = sorted({group(f) for f in fits}, key=lambda g: (len(g), g))
    report = {"by_patience": summarize(fits, label),
              group_key: {g: summarize([f for f in fits if group(f) == g], label) for g in groups},
              "fits": fits, "notes": doc.split("\n\n")[1].replace("\n", " "), **prov}
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(report, indent=1))
    for p, r in report["by_patience"].items():
        print(f"P={p}: kept epoch unchanged in {r['same_model']}/{r['fits']} fits, worst ELBO given up "
              f"{r['worst_elbo_given_up']}, epochs saved {r['epochs_saved_mean']:.0%}")


if __name__ == "__main__":
    sys.exit(main())
