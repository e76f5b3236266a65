"""Would early stopping change VAEAnomalyDetector's members on the ADBench protocol? Read off fits without it.

    python benchmarks/detector_patience.py --out benchmarks/results/anomaly/patience.json

Each ensemble member keeps its best epoch on a held-out 10% (keep-best) and today trains to its step budget
(``early_stopping=0``). A member with patience P follows the same trajectory until it stops, so one fit per set and
seed without it tells, for every P, which epoch would be kept (benchmarks/generator_patience.py's rule). Fits: the
default detector on the ADBench unsupervised split (anomaly_adbench.py: 70/30, MinMax on train) of the 11
development sets and the 8 held-out sets, seeds 1–3; the member histories are taken from the trainer. If every
member keeps the same epoch, the ADBench figures cannot change under that P.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anomaly_adbench import DATASETS, heldout_sets, split  # noqa: E402
from generator_patience import write  # noqa: E402
from provenance import provenance  # noqa: E402

from vaekit import VAEAnomalyDetector  # noqa: E402
from vaekit.core import trainer as trainer_module  # noqa: E402


def member_histories(name: str, seed: int, threads: int) -> tuple[list[list[float]], float]:
    """The held-out ELBO per epoch of each member of the default detector fitted on NAME's split, and the fit time."""
    seen: list[list[float]] = []
    fit = trainer_module.Trainer.fit

    def recording(self: Any, *a: Any, **k: Any) -> Any:
        history = fit(self, *a, **k)
        seen.append([float(e.get("val_elbo", np.nan)) for e in history.epochs])
        return history

    X_tr, _, _, _ = split(name, seed)
    trainer_module.Trainer.fit = recording
    try:
        t = time.perf_counter()
        VAEAnomalyDetector(random_state=seed, n_threads=threads).fit(X_tr)
        return seen, time.perf_counter() - t
    finally:
        trainer_module.Trainer.fit = fit


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    prov = provenance(threads=args.threads)
    sets = [("dev", n) for n in DATASETS] + [("heldout", n) for n in heldout_sets().HELDOUT]
    fits: list[dict[str, Any]] = []
    for group, name in sets:
        for seed in (int(s) for s in args.seeds.split(",")):
            hists, secs = member_histories(name, seed, args.threads)
            for m, v in enumerate(hists):
                if np.isnan(v).any():  # no held-out part (under 50 rows): no early stopping either way
                    continue
                fits.append({"group": group, "dataset": name, "seed": seed, "member": m, "val_elbo": v})
            print(f"{name} seed {seed}: {len(hists)} members, epochs {[len(v) for v in hists]}, best "
                  f"{[int(np.nanargmax(v)) for v in hists]}, {secs:.1f} s", flush=True)
    label = lambda f: f"{f['dataset']} seed {f['seed']} member {f['member']}"  # noqa: E731
    write(args.out, fits, "by_group", lambda f: f["group"], label, __doc__, prov)
    return 0


if __name__ == "__main__":
    sys.exit(main())
