"""Choosing imputer settings WITHOUT the benchmark's missing entries: error on a validation mask of OBSERVED entries.

The MIWAE-protocol tables (``impute_uci.py``) score the entries that the benchmark's mask removed; a setting chosen
by that score is tuned on the test data. Here each (table, seed) gets the benchmark's own incomplete table (the same
50% MCAR mask), and a further 10% of its *observed* entries are hidden (seed 1000 + seed); every candidate is fit on
what is left and scored by the MSE on those hidden observed entries (standardised units) — what a user can do with
their own incomplete table. The benchmark's missing entries are never read.

    python benchmarks/impute_validation.py --datasets breast_wdbc --seeds 0,1,2 \\
        --candidates '{"default": {}, "epochs1000": {"epochs": 1000}}' --out benchmarks/results/impute/validation.json

Methods other than vaekit (``--baselines ExtraTrees,missForest``) are scored on the same validation entries.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import impute_uci as B  # noqa: E402  (the benchmark's data, masks and baselines)
from provenance import provenance  # noqa: E402

VALIDATION_SHARE = 0.1


def validation_mask(miss: np.ndarray, seed: int) -> np.ndarray:
    """True on ⌊10%⌋ of the observed entries (uniformly, seed 1000 + seed); never on a missing entry."""
    obs = np.flatnonzero(~miss.ravel())
    rng = np.random.default_rng(1000 + seed)
    v = np.zeros(miss.size, dtype=bool)
    v[rng.choice(obs, int(VALIDATION_SHARE * len(obs)), replace=False)] = True
    return v.reshape(miss.shape)


def score(est: Any, x: np.ndarray, miss: np.ndarray, val: np.ndarray) -> dict[str, float]:
    """Fit on x with miss|val hidden; MSE on the val entries only."""
    x_in = np.where(miss | val, np.nan, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        x_hat = est.fit(x_in).transform(x_in)
    return {"val_mse": float(np.mean((x_hat[val] - x[val]) ** 2)), "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=",".join(B.DATASETS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--candidates", default='{"default": {}}', help="JSON: name -> VAEImputer parameters")
    ap.add_argument("--baselines", default="", help="comma list of impute_uci.py methods scored on the same entries")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    import torch

    from vaekit import VAEImputer
    from vaekit.files import atomic_write_text

    torch.set_num_threads(args.threads)
    prov = provenance(threads=args.threads)
    cands = json.loads(args.candidates)
    seeds = [int(s) for s in args.seeds.split(",")]
    runs: list[dict[str, Any]] = []
    for name in args.datasets.split(","):
        x = B.load(name)
        for seed in seeds:
            miss = B.mask(x, "mcar", seed)
            val = validation_mask(miss, seed)
            todo = [(c, VAEImputer(**p, random_state=seed, n_threads=args.threads)) for c, p in cands.items()]
            todo += [(m, B.make(m, seed, args.threads)) for m in filter(None, args.baselines.split(","))]
            for cand, est in todo:
                r = {"dataset": name, "seed": seed, "candidate": cand, **score(est, x, miss, val)}
                runs.append(r)
                print(json.dumps(r), flush=True)
    summary = {d: {c: float(np.mean([r["val_mse"] for r in runs if r["dataset"] == d and r["candidate"] == c]))
                   for c in dict.fromkeys(r["candidate"] for r in runs)}
               for d in dict.fromkeys(r["dataset"] for r in runs)}
    doc = {"protocol": __doc__.split("\n\n")[1], "candidates": cands, "seeds": seeds, "summary": summary,
           "runs": runs, "provenance": prov}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(doc, indent=1) + "\n")
    for d, cs in summary.items():
        print(d, {c: round(v, 4) for c, v in cs.items()})


if __name__ == "__main__":
    main()
