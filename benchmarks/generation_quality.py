"""Generation quality (issue 6, item 5, images): conditional-sample accuracy and a Fréchet distance.

For MNIST and Fashion-MNIST (../shared/data): train an independent classifier here (MLP 784-512-256-10),
then a conditional VAE (labels one-hot into encoder and decoder) and an unconditional VAE with vaekit.
* conditional accuracy: 1,000 samples E[x|z], z ~ N(0, I), per class c, judged by the classifier (target ≥ 95% MNIST);
  also at temperature 0.8 (z ~ N(0, 0.64 I));
* Fréchet distance in the classifier's 256-d penultimate features (Inception weights cannot be downloaded here)
  between 10,000 test images and 10,000 samples; reference rows: train images (the floor) and
  per-pixel-shuffled test images.
Runtime cap (≤ 15 min on one busy CPU thread): the classifier trains at most ``--clf-epochs`` epochs or
``--clf-seconds`` s, the CVAE at most ``--epochs`` epochs or ``--cvae-minutes`` min, the VAE at most
``--vae-epochs`` epochs or ``--vae-minutes`` min (Trainer ``time_limit_min``; 0 = no limit); on a machine shared
with other jobs fewer epochs fit in these limits. With every time limit 0 the run is fixed by its seed alone
(the seeds protocol, ``benchmarks/summarise_seeds.py images``):

    OMP_NUM_THREADS=1 python benchmarks/generation_quality.py --out benchmarks/results/generation
    OMP_NUM_THREADS=1 python benchmarks/generation_quality.py --seed S --clf-seconds 0 --cvae-minutes 0 \
        --vae-minutes 0 --vae-epochs 7 --out runs/genq_seedS
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import linalg
from torch import nn

from vaekit.core.config import ModelConfig, TrainConfig
from vaekit.core.model import VAE
from vaekit.core.trainer import Trainer
from vaekit.files import atomic_write_text
from vaekit.plots import save_grid
from vaekit.runtime import resolve_precision

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import provenance  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PRECISION = "auto"  # bf16 where the CPU multiplies it natively (where the published runs were made), else fp32


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2), nn.Linear(512, 256), nn.ReLU())
        self.head = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def train_classifier(x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int, seconds: float) -> Classifier:
    """Adam on cross-entropy, at most ``epochs`` epochs or ``seconds`` s (checked after every batch)."""
    torch.manual_seed(seed)
    clf = Classifier()
    opt = torch.optim.Adam(clf.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 128):
            idx = perm[i:i + 128]
            loss = nn.functional.cross_entropy(clf(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if seconds and time.perf_counter() - t0 > seconds:
                return clf.eval()
    return clf.eval()


@torch.no_grad()
def features(clf: Classifier, x: torch.Tensor) -> np.ndarray:
    return torch.cat([clf.features(x[i:i + 2000]) for i in range(0, len(x), 2000)]).double().numpy()


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(sa @ sb, disp=False)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sa + sb - 2 * covmean.real))


def run(name: str, epochs: int, clf_epochs: int, seed: int, out: Path, clf_seconds: float, vae_minutes: float,
        cvae_minutes: float, vae_epochs: int | None = None) -> dict:
    d = np.load(SHARED / f"{name}.npz")
    xtr = torch.from_numpy(d["x_train"].reshape(-1, 784).astype(np.float32) / 255)
    xte = torch.from_numpy(d["x_test"].reshape(-1, 784).astype(np.float32) / 255)
    ytr, yte = torch.from_numpy(d["y_train"].astype(np.int64)), torch.from_numpy(d["y_test"].astype(np.int64))
    t0 = time.perf_counter()
    clf = train_classifier(xtr, ytr, clf_epochs, seed, clf_seconds)
    with torch.no_grad():
        clf_acc = float((clf(xte).argmax(1) == yte).float().mean())
    res: dict = {"classifier_test_accuracy": clf_acc, "classifier_seconds": time.perf_counter() - t0}
    f_test = features(clf, xte)
    res["fd_train_vs_test"] = frechet(features(clf, xtr[:10000]), f_test)
    shuffled = xte[:, torch.randperm(784, generator=torch.Generator().manual_seed(seed))]
    res["fd_pixel_shuffled_vs_test"] = frechet(features(clf, shuffled), f_test)
    for conditional in (True, False):
        tag = "cvae" if conditional else "vae"
        # CVAE: 8 latent dimensions and no KL warm-up, so the class lives in c rather than in z
        mcfg = ModelConfig(input_shape=(1, 28, 28), latent_dim=8 if conditional else 16, hidden=(512, 256),
                           activation="elu", likelihood="bernoulli", n_conditions=10 if conditional else 0)
        tcfg = TrainConfig(epochs=epochs if conditional or vae_epochs is None else vae_epochs, batch_size=100, lr=1e-3, warmup_epochs=0 if conditional else 2, seed=seed,
                           objective="elbo", precision=PRECISION, time_limit_min=cvae_minutes if conditional else vae_minutes)
        model = VAE(mcfg)
        t1 = time.perf_counter()
        # validation (keep-best) on the last 5,000 training images; the test set is only used for judging
        hist = Trainer(model, tcfg, progress=False).fit(xtr[:55000], xtr[55000:], None,
                                                        ytr[:55000] if conditional else None,
                                                        ytr[55000:] if conditional else None)
        res[f"{tag}_train_seconds"] = time.perf_counter() - t1
        res[f"{tag}_epochs"], res[f"{tag}_stopped"] = len(hist.epochs), hist.stopped
        res[f"{tag}_precision"] = resolve_precision(PRECISION)
        # None when the time limit came before the first finished epoch (no validation ran)
        res[f"{tag}_val_elbo"] = hist.epochs[hist.best_epoch].get("val_elbo") if hist.epochs else None
        gen = torch.Generator().manual_seed(seed)
        if conditional:
            c = torch.arange(10).repeat_interleave(1000)
            samples = model.sample(len(c), gen, c=c)
            with torch.no_grad():
                pred = clf(samples).argmax(1)
            per_class = [float((pred[c == k] == k).float().mean()) for k in range(10)]
            res["conditional_accuracy"] = float((pred == c).float().mean())
            res["conditional_accuracy_per_class"] = per_class
            with torch.no_grad():
                cold = model.sample(len(c), torch.Generator().manual_seed(seed), temperature=0.8, c=c)
                res["conditional_accuracy_t08"] = float((clf(cold).argmax(1) == c).float().mean())
            save_grid(out / f"{name}_cvae_samples.png", samples.view(10, 1000, 784)[:, :10].reshape(-1, 784).numpy(),
                      (28, 28), ncol=10)
        else:
            samples = model.sample(10000, gen)
            save_grid(out / f"{name}_vae_samples.png", samples[:100].numpy(), (28, 28), ncol=10)
        res[f"fd_{tag}_samples_vs_test"] = frechet(features(clf, samples), f_test)
    return res


def markdown(results: dict) -> str:
    """The headline figures as a Markdown table."""
    names = [k for k in results if k not in ("config", "provenance")]
    rows = [("classifier test accuracy", "classifier_test_accuracy"),
            ("CVAE conditional accuracy (target ≥ 0.95 MNIST)", "conditional_accuracy"),
            ("CVAE conditional accuracy, temperature 0.8", "conditional_accuracy_t08"),
            ("FD CVAE samples vs test", "fd_cvae_samples_vs_test"),
            ("FD VAE samples vs test", "fd_vae_samples_vs_test"), ("FD train vs test (floor)", "fd_train_vs_test"),
            ("FD pixel-shuffled test vs test", "fd_pixel_shuffled_vs_test"), ("CVAE epochs", "cvae_epochs"),
            ("VAE epochs", "vae_epochs")]
    cfg = results["config"]
    lines = ["# Image generation quality", "",
             f"Independent MLP classifier (≤ {cfg['clf_epochs']} epochs / {cfg['clf_seconds']:.0f} s); "
             f"CVAE 784-512-256-8 (≤ {cfg['epochs']} epochs / {cfg['cvae_minutes']} min), "
             f"VAE 784-512-256-16 (≤ {cfg.get('vae_epochs') or cfg['epochs']} epochs / {cfg['vae_minutes']} min); "
             "bf16 where the CPU multiplies it natively, else fp32 (precision 'auto'), 1 thread; "
             "Fréchet distances in the classifier's 256-d features, 10,000 images each. "
             f"Total {cfg['seconds']:.0f} s.", "",
             "| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, key in rows:
        cells = [results[n].get(key) for n in names]
        lines.append(f"| {label} | " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="benchmarks/results/generation")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--clf-epochs", type=int, default=8)
    ap.add_argument("--clf-seconds", type=float, default=60.0)
    ap.add_argument("--cvae-minutes", type=float, default=3.5)
    ap.add_argument("--vae-minutes", type=float, default=1.5)
    ap.add_argument("--vae-epochs", type=int, default=None, help="epochs of the unconditional VAE (default --epochs)")
    ap.add_argument("--datasets", nargs="+", default=["mnist", "fashion_mnist"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    prov = provenance(threads=args.threads)  # before the run: its load average is the one the run met
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results: dict = {}
    for name in args.datasets:
        results[name] = run(name, args.epochs, args.clf_epochs, args.seed, out, args.clf_seconds, args.vae_minutes,
                            args.cvae_minutes, args.vae_epochs)
        results["config"] = {**vars(args), "seconds": time.perf_counter() - t0}
        results.update(prov)
        atomic_write_text(out / "images.json", json.dumps(results, indent=2))
        atomic_write_text(out / "images.md", markdown(results))
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
