"""Benchmark: the model zoo on statically binarized MNIST, test NLL with k = 5000, next to the published numbers.

Each model trains under the same wall-clock budget with the default recipe of ``benchmarks/mnist_nll.py`` (IWAE
k = 10, 10-epoch KL warm-up, Adam 1e-3, cosine decay over the time budget, bf16 autocast, keep-best on the
validation IWAE bound), then the best model is scored with k = 5000 importance samples on the test set
(bf16 decoder, log-weights in fp32, as mnist_nll.py; ``--eval-precision fp32`` for fp32). One results file per
model: ``OUT/<model>.json`` (provenance, configs, wall-clock, test metrics, the published reference).

    python benchmarks/zoo.py --minutes 120 --out benchmarks/results/zoo                  # every model, 2 h each
    python benchmarks/zoo.py --models vampprior hvae_vampprior --minutes 120
    python benchmarks/zoo.py --minutes 0.2 --eval-k 10 --eval-n 100 --out /tmp/zoo --runs /tmp/zoo/runs  # smoke
    python benchmarks/zoo.py --list
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import provenance  # noqa: E402

from vaekit.core.checkpoint import load_model  # noqa: E402
from vaekit.core.config import ModelConfig, TrainConfig  # noqa: E402
from vaekit.core.evaluate import evaluate  # noqa: E402
from vaekit.core.model import VAE  # noqa: E402
from vaekit.core.preprocess import prepare  # noqa: E402
from vaekit.core.trainer import Trainer  # noqa: E402
from vaekit.data import load_splits  # noqa: E402
from vaekit.files import atomic_write_text  # noqa: E402
from vaekit.runtime import seed_everything  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "binarized_mnist.npz"
MLP = dict(input_shape=(784,), latent_dim=40, hidden=(300, 300), activation="tanh")
CONV = dict(input_shape=(1, 28, 28), latent_dim=40, hidden=(300,), channels=(32, 64), activation="elu")

# name → (ModelConfig fields, published test NLL or None, where it is from / what it compares with)
MODELS: dict[str, tuple[dict[str, Any], float | None, str]] = {
    "vae": (dict(MLP), 88.56, "Tomczak & Welling 2018, Table 2: VAE, MLP 2×300, z = 40, N(0, I)"),
    "mog": (dict(MLP, prior="mog", prior_components=10), None, "no published figure in this setting"),
    "vampprior": (dict(MLP, prior="vampprior", prior_components=500), 85.57,
                  "Tomczak & Welling 2018, Table 2: VAE + VampPrior (500 pseudo-inputs)"),
    "hvae": (dict(MLP, stochastic_layers=2), 86.05, "Tomczak & Welling 2018, Table 2: HVAE (2 stochastic layers)"),
    "hvae_vampprior": (dict(MLP, stochastic_layers=2, prior="vampprior", prior_components=500), 83.19,
                       "Tomczak & Welling 2018, Table 2: HVAE + VampPrior"),
    "iaf": (dict(MLP, posterior="iaf", flow_steps=2), None,
            "Kingma et al. 2016 report IAF with ResNet VAEs only; no MLP figure"),
    "resnet": (dict(CONV, arch="resnet"), None, "no one-layer conv figure in Tomczak & Welling 2018"),
    "resnet_hvae_vampprior": (dict(CONV, arch="resnet", stochastic_layers=2, prior="vampprior",
                                   prior_components=500), 81.09,
                              "Tomczak & Welling 2018, Table 2: convHVAE + VampPrior (their conv nets, not ResNet)"),
}


def evaluate_within(model: VAE, x: torch.Tensor, args: argparse.Namespace) -> dict[str, Any]:
    """IS-NLL on ``x``, chunk by chunk (``--eval-chunk`` images) until ``--eval-seconds`` have passed (0: all of x).

    The chunks' means combine exactly: mean = Σ nᵢ·meanᵢ / N and s.e. = √(Σ nᵢ²·seᵢ²) / N (images independent).
    """
    dev = next(model.parameters()).device
    compile_ = {"auto": None, "on": True, "off": False}[args.eval_compile]
    chunk = args.eval_chunk if args.eval_seconds > 0 else len(x)
    parts: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for i in range(0, len(x), chunk):
        parts.append(evaluate(model, x[i:i + chunk].to(dev), k=args.eval_k, batch_size=args.eval_batch,
                              precision=args.eval_precision, seed=2 + i // chunk, compile=compile_))
        if args.eval_seconds > 0 and time.perf_counter() - t0 > args.eval_seconds:
            break
    if len(parts) == 1:
        return parts[0]
    n = sum(p["n"] for p in parts)
    out = dict(parts[0], n=n, chunks=len(parts))
    for key in ("nll", "elbo", "recon", "kl", "bits_per_dim"):
        out[key] = sum(p["n"] * p[key] for p in parts) / n
    out["nll_sem"] = sum((p["n"] * p["nll_sem"]) ** 2 for p in parts) ** 0.5 / n
    return out


def run_one(name: str, args: argparse.Namespace, splits: dict[str, Any]) -> dict[str, Any]:
    fields, ref, ref_source = MODELS[name]
    mcfg = ModelConfig(likelihood="bernoulli", **fields)
    tcfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, objective="iwae", iwae_k=args.k,
                       warmup_epochs=args.warmup, precision=args.precision, time_limit_min=args.minutes,
                       seed=args.seed, num_threads=args.threads, device=args.device)
    seed_everything(tcfg.seed)
    model = VAE(mcfg)
    xtr, tf = prepare(splits["train"].x, model.likelihood, "train")
    xva, _ = prepare(splits["valid"].x, model.likelihood, "valid")
    xte, _ = prepare(splits["test"].x, model.likelihood, "test")
    run_dir = Path(args.runs) / name
    print(f"== {name}: {sum(p.numel() for p in model.parameters()):,} weights, {args.minutes} min", flush=True)
    t0 = time.perf_counter()
    hist = Trainer(model, tcfg, out_dir=run_dir, progress=False,
                   on_epoch=lambda row: print(name, json.dumps({k: round(v, 3) for k, v in row.items()}),
                                              flush=True)).fit(xtr, xva, tf)
    train_s = time.perf_counter() - t0
    best, _ = load_model(run_dir / "model")
    best.to(next(model.parameters()).device)
    t1 = time.perf_counter()
    test = evaluate_within(best, xte[:args.eval_n], args)
    eval_s = time.perf_counter() - t1
    res = {"benchmark": "model zoo, statically binarized MNIST, test NLL", "model": name,
           "model_config": mcfg.to_dict(), "train_config": tcfg.to_dict(),
           "weights": sum(p.numel() for p in model.parameters()), "train_seconds": train_s,
           "epochs_run": len(hist.epochs), "best_epoch": hist.best_epoch, "stopped": hist.stopped,
           "test": test, "eval_seconds": eval_s, "eval_precision": args.eval_precision,
           "published_nll": ref, "published_source": ref_source, "run_folder": str(run_dir),
           "device": str(next(best.parameters()).device)}
    res.update(provenance(threads=args.threads))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / f"{name}.json", json.dumps(res, indent=2))
    if args.table:  # one file for many models (the device machine returns few files)
        table = json.loads(Path(args.table).read_text()) if Path(args.table).exists() else {}
        atomic_write_text(Path(args.table), json.dumps({**table, name: res}, indent=2))
    print(f"{name}: test NLL {test['nll']:.2f} ± {test['nll_sem']:.2f} (k={args.eval_k}, n={test['n']}); "
          f"published {ref}; trained {train_s / 60:.1f} min, {len(hist.epochs)} epochs", flush=True)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=list(MODELS), help=f"subset of {list(MODELS)}")
    ap.add_argument("--list", action="store_true", help="print the models and their references")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--out", default="benchmarks/results/zoo")
    ap.add_argument("--runs", default=str(ROOT / "runs" / "bench" / "zoo"), help="training run folders")
    ap.add_argument("--minutes", type=float, default=120.0, help="training time budget per model")
    ap.add_argument("--epochs", type=int, default=5000, help="upper bound; the time budget normally stops first")
    ap.add_argument("--k", type=int, default=10, help="IWAE samples in training")
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--device", default="cpu", help="cpu | cuda (report GPU runs separately: another --out)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-k", type=int, default=5000)
    ap.add_argument("--eval-n", type=int, default=10000)
    ap.add_argument("--eval-batch", type=int, default=100)
    ap.add_argument("--eval-precision", default="bf16")
    ap.add_argument("--eval-seconds", type=float, default=0.0,
                    help="stop scoring after the chunk that passes this many seconds (0: score all --eval-n images)")
    ap.add_argument("--eval-chunk", type=int, default=1000, help="images per chunk under --eval-seconds")
    ap.add_argument("--eval-compile", choices=("auto", "on", "off"), default="auto",
                    help="torch.compile the decoder in scoring (auto: when N·k ≥ 10⁷)")
    ap.add_argument("--table", default="", help="also merge each model's result into this one JSON file")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; known: {list(MODELS)}")
    if args.list:
        for name, (fields, ref, src) in MODELS.items():
            print(f"{name:24s} {ref if ref is not None else '—':>6}  {src}  {fields}")
        return 0
    torch.set_num_threads(args.threads)
    splits = load_splits(args.data)
    table = []
    for name in args.models:
        r = run_one(name, args, splits)
        table.append((name, r["test"]["nll"], r["published_nll"], r["train_seconds"] / 60))
    print("\n| model | test NLL (k=%d) | published | training (min) |\n|---|---|---|---|" % args.eval_k)
    for name, nll, ref, minutes in table:
        print(f"| {name} | {nll:.2f} | {ref if ref is not None else '—'} | {minutes:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
