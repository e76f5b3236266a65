"""Benchmark 11a: statically binarized MNIST, MLP 784-300-300-40, Bernoulli, test NLL with k = 5000.

Trains under a wall-clock budget, snapshots the model along the way (for the NLL-vs-wall-clock curve, each
snapshot scored afterwards with a smaller k on a test subset), then evaluates the best model with
k = 5000 importance samples on all 10,000 test images and times that evaluation.

    python benchmarks/mnist_nll.py --minutes 30 --out benchmarks/results/mnist_nll
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from vaekit.core.checkpoint import load_model, save_model
from vaekit.core.config import ModelConfig, TrainConfig
from vaekit.core.evaluate import evaluate
from vaekit.core.model import VAE
from vaekit.core.preprocess import prepare
from vaekit.core.trainer import Trainer
from vaekit.data import load_splits
from vaekit.files import atomic_write_text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import provenance  # noqa: E402


def plot(res: dict, path: Path) -> None:
    """NLL-vs-wall-clock: snapshots (k = curve_k on a random test subset) and the final k = 5000 figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vaekit.files import atomic_save

    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=100)
    if res["curve"]:
        ax.plot([c["minutes"] for c in res["curve"]], [c["nll"] for c in res["curve"]], "o-",
                label="snapshots (k=500, 2,000 random test images)")
    ax.plot([res["train_seconds"] / 60], [res["test"]["nll"]], "r*", ms=12,
            label=f"final: k=5000, all 10,000 test images ({res['test']['nll']:.2f})")
    ax.axhline(88.56, color="gray", ls="--", lw=1, label="VampPrior paper, VAE baseline (88.56)")
    ax.axhline(88.5, color="green", ls=":", lw=1, label="target (88.5)")
    ax.set_xlabel("training wall-clock (minutes, 2 CPU cores)")
    ax.set_ylabel("test NLL (nats)")
    ax.set_title("binarized MNIST, MLP 784-300-300-40")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / ".." / "shared/data/binarized_mnist.npz"))
    ap.add_argument("--out", default="benchmarks/results/mnist_nll")
    ap.add_argument("--minutes", type=float, default=30.0,
                    help="wall-clock limit; the cosine then runs over the time. 0: no limit, cosine over --epochs")
    ap.add_argument("--epochs", type=int, default=250)
    ap.add_argument("--objective", default="iwae")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--activation", default="tanh")
    ap.add_argument("--schedule", default="cosine")
    ap.add_argument("--early-stopping", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--snapshot-minutes", type=float, default=3.0)
    ap.add_argument("--curve-k", type=int, default=500)
    ap.add_argument("--curve-n", type=int, default=2000)
    ap.add_argument("--eval-k", type=int, default=5000)
    ap.add_argument("--eval-n", type=int, default=10000)
    ap.add_argument("--eval-precision", default="bf16")
    ap.add_argument("--check-n", type=int, default=500, help="test images also scored in fp32 to measure bf16 error")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--replot", action="store_true", help="only redraw the plot from OUT/result.json")
    ap.add_argument("--resume", action="store_true",
                    help="continue OUT/run from its checkpoint (the Trainer's exact resume); the NLL-vs-time curve "
                         "then covers only this invocation's snapshots")
    args = ap.parse_args(argv)
    if args.replot:
        plot(json.loads((Path(args.out) / "result.json").read_text()), Path(args.out) / "nll_vs_time.png")
        return 0
    torch.set_num_threads(args.threads)
    prov = provenance(threads=args.threads)  # before the run: its load average is the one the run met
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sp = load_splits(args.data)
    mcfg = ModelConfig(input_shape=(784,), latent_dim=40, hidden=(300, 300), activation=args.activation,
                       likelihood="bernoulli")
    tcfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, objective=args.objective,
                       iwae_k=args.k, precision=args.precision, warmup_epochs=args.warmup,
                       weight_decay=args.weight_decay, schedule=args.schedule, time_limit_min=args.minutes,
                       early_stopping=args.early_stopping, seed=args.seed, num_threads=args.threads,
                       optimizer="adamw" if args.weight_decay else "adam")
    model = VAE(mcfg)
    xtr, tf = prepare(sp["train"].x, model.likelihood, "train")
    xva, _ = prepare(sp["valid"].x, model.likelihood, "valid")
    xte, _ = prepare(sp["test"].x, model.likelihood, "test")
    snaps: list[tuple[float, int]] = []
    next_snap = [args.snapshot_minutes * 60]

    def on_epoch(row: dict[str, float]) -> None:
        print(json.dumps({k: round(v, 3) for k, v in row.items()}), flush=True)
        if row["time"] >= next_snap[0]:
            save_model(model, out / f"snap_{len(snaps):02d}")
            snaps.append((row["time"], int(row["epoch"])))
            next_snap[0] += args.snapshot_minutes * 60

    trainer = Trainer(model, tcfg, out_dir=out / "run", progress=False, on_epoch=on_epoch)
    t0 = time.perf_counter()
    hist = trainer.fit(xtr, xva, tf, resume=args.resume)
    # a resumed run: its training time is the whole run's (the history's elapsed time), not this invocation's
    train_s = float(hist.epochs[-1]["time"]) if args.resume and hist.epochs else time.perf_counter() - t0
    best, _ = load_model(out / "run" / "model")
    # the test file is not in random order (its first 500 images are much harder than the next 1,500):
    # subsets for the curve and the precision check are random
    sub = torch.randperm(len(xte), generator=torch.Generator().manual_seed(0))
    curve = []
    for i, (t, ep) in enumerate(snaps):
        m, _ = load_model(out / f"snap_{i:02d}")
        r = evaluate(m, xte[sub[:args.curve_n]], k=args.curve_k, precision=args.eval_precision, seed=1)
        curve.append({"minutes": t / 60, "epoch": ep, "nll": r["nll"]})
        print("curve", curve[-1], flush=True)
    check = {}
    if args.check_n:
        xc = xte[sub[:args.check_n]]
        r32 = evaluate(best, xc, k=args.eval_k, precision="fp32", seed=3)
        r16 = evaluate(best, xc, k=args.eval_k, precision=args.eval_precision, seed=3)
        check = {"n": args.check_n, "nll_fp32": r32["nll"], f"nll_{args.eval_precision}": r16["nll"],
                 "difference": r16["nll"] - r32["nll"]}
        print("precision check", check, flush=True)
    t1 = time.perf_counter()
    final = evaluate(best, xte[:args.eval_n], k=args.eval_k, precision=args.eval_precision, seed=2)
    eval_s = time.perf_counter() - t1
    res = {"benchmark": "binarized MNIST test NLL", "model": "MLP 784-300-300-40 Bernoulli",
           "train_config": tcfg.to_dict(), "train_seconds": train_s, "epochs_run": len(hist.epochs),
           "best_epoch": hist.best_epoch, "stopped": hist.stopped, "test": final, "eval_seconds": eval_s,
           "precision_check": check, "curve": curve, "threads": args.threads, "resumed": args.resume,
           "argv": sys.argv[1:], "torch": torch.__version__, **prov}
    atomic_write_text(out / "result.json", json.dumps(res, indent=2))
    plot(res, out / "nll_vs_time.png")
    print(json.dumps({k: res[k] for k in ("train_seconds", "epochs_run", "best_epoch", "eval_seconds")}))
    print("TEST", json.dumps(final))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
