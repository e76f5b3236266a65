"""Headline figures over training seeds: mean ± s.d. over seeds, with each run's test-set interval kept apart.

    python benchmarks/summarise_seeds.py nll runs/nll_seed0 runs/nll_seed1 runs/nll_seed2 \
        --out benchmarks/results/mnist_nll/seeds
    python benchmarks/summarise_seeds.py images runs/genq_seed0 runs/genq_seed1 runs/genq_seed2 \
        --out benchmarks/results/generation/seeds_images

Each RUN_DIR holds one seed's results file (``result.json`` of ``mnist_nll.py`` or ``images.json`` of
``generation_quality.py``), run with no wall-clock limit so that the seed alone fixes the run. Two spreads are
reported and never mixed: the s.d. over training seeds (how much a re-training moves the figure) and, per run, the
test-set uncertainty (the s.e.m. over test images of the NLL; the Wilson 95% interval of an accuracy over its n
judged samples). An accuracy target is met only if the mean over seeds reaches it; the pooled Wilson interval
over all seeds' samples is shown beside it.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from provenance import provenance  # noqa: E402

sys.path.insert(0, str(HERE.parent / "src"))
from vaekit.files import atomic_write_text  # noqa: E402


def wilson(p: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion: (p + z²/2n ± z √(p(1−p)/n + z²/4n²)) / (1 + z²/n)."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def spread(values: list[float]) -> dict[str, Any]:
    """Mean and sample s.d. (ddof 1) over seeds."""
    a = np.asarray(values, dtype=float)
    return {"values": [float(v) for v in a], "mean": float(a.mean()),
            "sd": float(a.std(ddof=1)) if len(a) > 1 else float("nan")}


def nll(runs: list[dict[str, Any]]) -> dict[str, Any]:
    for r in runs:
        if r["train_config"].get("time_limit_min"):
            raise SystemExit("a run has a wall-clock limit: its epochs depend on the machine, not on its seed")
    return {"figure": "binarized MNIST test NLL (nats), k = 5000, all 10,000 test images",
            "seeds": [r["train_config"]["seed"] for r in runs],
            "epochs": sorted({r["epochs_run"] for r in runs}),
            "nll": spread([r["test"]["nll"] for r in runs]),
            "test_sem_per_seed": [r["test"]["nll_sem"] for r in runs],
            "elbo": spread([r["test"]["elbo"] for r in runs]),
            "active_units": [r["test"]["active_units"] for r in runs],
            "train_seconds": [r["train_seconds"] for r in runs], "threads": [r["threads"] for r in runs],
            "eval_seconds": [r["eval_seconds"] for r in runs]}


def images(runs: list[dict[str, Any]]) -> dict[str, Any]:
    for r in runs:
        c = r["config"]
        if c["cvae_minutes"] or c["vae_minutes"] or c["clf_seconds"]:
            raise SystemExit("a run has a wall-clock limit: its epochs depend on the machine, not on its seed")
    out: dict[str, Any] = {"figure": "conditional-sample accuracy (independent classifier) and Fréchet distances",
                           "seeds": [r["config"]["seed"] for r in runs], "datasets": {}}
    for name in runs[0]:
        if name in ("config", "provenance"):
            continue
        per = [r[name] for r in runs]
        n = 10000  # 1,000 samples per class
        acc = [p["conditional_accuracy"] for p in per]
        pooled = float(np.mean(acc))
        out["datasets"][name] = {
            "conditional_accuracy": spread(acc),
            "wilson95_per_seed": [wilson(a, n) for a in acc],
            "wilson95_pooled": wilson(pooled, n * len(acc)), "samples_per_seed": n,
            "conditional_accuracy_t08": spread([p["conditional_accuracy_t08"] for p in per]),
            "classifier_test_accuracy": spread([p["classifier_test_accuracy"] for p in per]),
            **{k: spread([p[k] for p in per]) for k in ("fd_cvae_samples_vs_test", "fd_vae_samples_vs_test",
                                                         "fd_train_vs_test", "fd_pixel_shuffled_vs_test")},
            "cvae_epochs": [p["cvae_epochs"] for p in per], "vae_epochs": [p["vae_epochs"] for p in per]}
    return out


def fmt(s: dict[str, Any], digits: int = 2, scale: float = 1.0) -> str:
    return f"{s['mean'] * scale:.{digits}f} ± {s['sd'] * scale:.{digits}f}"


def markdown(kind: str, doc: dict[str, Any]) -> str:
    lines = [f"# {doc['figure']}: {len(doc['seeds'])} training seeds", "",
             f"Seeds {doc['seeds']}; mean ± s.d. over seeds (ddof 1); no wall-clock limit, so each run is fixed by "
             "its seed. Produced by `benchmarks/summarise_seeds.py`.", ""]
    if kind == "nll":
        lines += ["| seed | test NLL | s.e.m. over test images | −ELBO | active units | train s | threads |",
                  "|---|---|---|---|---|---|---|"]
        for i, s in enumerate(doc["seeds"]):
            lines.append(f"| {s} | {doc['nll']['values'][i]:.2f} | {doc['test_sem_per_seed'][i]:.2f} | "
                         f"{-doc['elbo']['values'][i]:.2f} | {doc['active_units'][i]} | "
                         f"{doc['train_seconds'][i]:.0f} | {doc['threads'][i]} |")
        lines += [f"| **mean ± s.d.** | **{fmt(doc['nll'])}** | | {-doc['elbo']['mean']:.2f} | | | |", "",
                  f"Epochs per run: {doc['epochs']}."]
    else:
        for name, d in doc["datasets"].items():
            lo, hi = d["wilson95_pooled"]
            lines += [f"## {name}", "", "| figure | mean ± s.d. over seeds | per seed |", "|---|---|---|",
                      f"| conditional accuracy (%) | **{fmt(d['conditional_accuracy'], 2, 100)}** | "
                      + ", ".join(f"{v * 100:.2f} [{a * 100:.2f}, {b * 100:.2f}]" for v, (a, b) in
                                  zip(d["conditional_accuracy"]["values"], d["wilson95_per_seed"])) + " |",
                      f"| conditional accuracy at temperature 0.8 (%) | {fmt(d['conditional_accuracy_t08'], 2, 100)} | "
                      + ", ".join(f"{v * 100:.2f}" for v in d["conditional_accuracy_t08"]["values"]) + " |",
                      f"| classifier test accuracy (%) | {fmt(d['classifier_test_accuracy'], 2, 100)} | |"]
            for k, label in (("fd_cvae_samples_vs_test", "FD, CVAE samples vs test"),
                             ("fd_vae_samples_vs_test", "FD, VAE samples vs test"),
                             ("fd_train_vs_test", "FD, train vs test (floor)"),
                             ("fd_pixel_shuffled_vs_test", "FD, pixel-shuffled test vs test")):
                lines.append(f"| {label} | {fmt(d[k], 1)} | " + ", ".join(f"{v:.1f}" for v in d[k]["values"]) + " |")
            lines += ["", f"Per seed in brackets: the Wilson 95% interval over its {d['samples_per_seed']:,} judged "
                      f"samples; pooled over seeds: [{lo * 100:.2f}, {hi * 100:.2f}]%. CVAE epochs "
                      f"{d['cvae_epochs']}, VAE epochs {d['vae_epochs']}.", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=("nll", "images"))
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="folder for summary.{json,md} and the per-seed files")
    args = ap.parse_args(argv)
    name = "result.json" if args.kind == "nll" else "images.json"
    runs = [json.loads((d / name).read_text()) for d in args.runs]
    doc = (nll if args.kind == "nll" else images)(runs)
    doc.update(provenance(argv, threads=0))
    doc["run_provenance"] = [r.get("provenance") for r in runs]
    args.out.mkdir(parents=True, exist_ok=True)
    for d, r in zip(args.runs, runs):   # keep each seed's own results file beside the summary
        seed = r["train_config"]["seed"] if args.kind == "nll" else r["config"]["seed"]
        shutil.copyfile(d / name, args.out / f"seed{seed}_{name}")
    atomic_write_text(args.out / "summary.json", json.dumps(doc, indent=2))
    atomic_write_text(args.out / "summary.md", markdown(args.kind, doc))
    print(markdown(args.kind, doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
