"""Benchmark 11b: training throughput (samples/s), MLP 784-300-300-40, Bernoulli, batch 100, Adam 1e-3.

Contenders run interleaved, one epoch of the 50k binarized-MNIST training images each per round:
  * bare: a plain ~30-line PyTorch loop (nn.Sequential, BCE-with-logits + closed-form KL, torch.optim.Adam);
  * bare-fused: the same loop with ``Adam(fused=True)``, the optimizer kernel vaekit uses (the fair baseline);
  * vaekit: ``vaekit.core.trainer.Trainer`` (fp32, ELBO, no validation so the work is the same; progress bar on);
  * vaekit-bf16: the same with ``precision='bf16'`` (autocast; reported separately, not used for the ratio);
  * pythae: pythae 0.1.2's ``BaseTrainer`` with its VAE and the same encoder/decoder (if installed).
Each round runs every contender once, in a random (seeded) order; ratios are taken pair by pair within a round and
reported as min / median / max over rounds. Also the machine's measured matmul peak (fp32 and bf16) and the achieved GFLOP/s of each contender.

    python benchmarks/throughput.py --rounds 3 --out benchmarks/results/throughput
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vaekit.core.config import ModelConfig, TrainConfig
from vaekit.core.model import VAE
from vaekit.core.trainer import Trainer
from vaekit.files import atomic_write_text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import provenance  # noqa: E402

ENC = [784, 300, 300]
LATENT = 40
# multiply-accumulates per example, forward: encoder 784·300 + 300·300 + 300·80, decoder 40·300 + 300·300 + 300·784
MACS = 784 * 300 + 300 * 300 + 300 * 2 * LATENT + LATENT * 300 + 300 * 300 + 300 * 784
TRAIN_FLOP = 3 * 2 * MACS  # forward + backward (≈ 2× forward)


def bare_loop(x: torch.Tensor, epochs: int = 1, fused: bool = False) -> None:
    """The reference: what a user writes by hand (``fused``: the same loop with the fused Adam kernel vaekit uses)."""
    enc = nn.Sequential(nn.Linear(784, 300), nn.Tanh(), nn.Linear(300, 300), nn.Tanh(), nn.Linear(300, 80))
    dec = nn.Sequential(nn.Linear(40, 300), nn.Tanh(), nn.Linear(300, 300), nn.Tanh(), nn.Linear(300, 784))
    enc.to(x.device), dec.to(x.device)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3, fused=fused)
    for _ in range(epochs):
        perm = torch.randperm(len(x), device=x.device)
        for i in range(0, len(x), 100):
            xb = x[perm[i:i + 100]]
            mu, logvar = enc(xb).chunk(2, -1)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            logits = dec(z)
            rec = F.binary_cross_entropy_with_logits(logits, xb, reduction="sum")
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum()
            loss = (rec + kl) / len(xb)
            opt.zero_grad()
            loss.backward()
            opt.step()


def vaekit_loop(x: torch.Tensor, precision: str = "fp32", threads: int = 0, device: str = "cpu") -> None:
    """``x`` stays where the user has it (in host memory): the Trainer moves each batch to ``device``."""
    model = VAE(ModelConfig(input_shape=(784,), latent_dim=LATENT, hidden=(300, 300), activation="tanh"))
    cfg = TrainConfig(epochs=1, batch_size=100, lr=1e-3, schedule="constant", precision=precision,
                      objective="elbo", warmup_epochs=0.0, num_threads=threads, device=device)
    Trainer(model, cfg, progress=True).fit(x)


def pythae_loop(x: torch.Tensor, workdir: str) -> None:
    from pythae.data.datasets import BaseDataset
    from pythae.models import VAE as PVAE
    from pythae.models import VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.trainers import BaseTrainer, BaseTrainerConfig

    class Enc(BaseEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(784, 300), nn.Tanh(), nn.Linear(300, 300), nn.Tanh(), nn.Linear(300, 80))

        def forward(self, x: torch.Tensor) -> ModelOutput:
            mu, logvar = self.net(x.reshape(len(x), -1)).chunk(2, -1)
            return ModelOutput(embedding=mu, log_covariance=logvar)

    class Dec(BaseDecoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(40, 300), nn.Tanh(), nn.Linear(300, 300), nn.Tanh(), nn.Linear(300, 784))

        def forward(self, z: torch.Tensor) -> ModelOutput:
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)).reshape(-1, 1, 28, 28))

    model = PVAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=LATENT, reconstruction_loss="bce"),
                 encoder=Enc(), decoder=Dec())
    cfg = BaseTrainerConfig(output_dir=workdir, num_epochs=1, per_device_train_batch_size=100,
                            learning_rate=1e-3, optimizer_cls="Adam", no_cuda=True)
    data = x.reshape(-1, 1, 28, 28)
    BaseTrainer(model, BaseDataset(data, torch.zeros(len(data))), training_config=cfg).train()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 10, device: str = "cpu") -> float:
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/binarized_mnist.npz"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/throughput")
    ap.add_argument("--device", default="cpu", help="cpu | cuda: the bare loops hold the data on the device (as a "
                    "hand-written GPU loop would); vaekit gets it in host memory and moves each batch")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = args.device
    x = torch.from_numpy(np.load(args.data)["train"].astype(np.float32))
    xd = x.to(dev)
    contenders = {"bare": lambda: bare_loop(xd), "bare-fused": lambda: bare_loop(xd, fused=True),
                  "vaekit": lambda: vaekit_loop(x, threads=args.threads, device=dev),
                  "vaekit-bf16": lambda: vaekit_loop(x, "bf16", threads=args.threads, device=dev)}
    if dev != "cpu":  # the same data already on the device, as the bare loops have it
        contenders["vaekit-data-on-device"] = lambda: vaekit_loop(xd, threads=args.threads, device=dev)
    try:
        import pythae  # noqa: F401
        if dev == "cpu":
            work = tempfile.mkdtemp(prefix="pythae-")
            contenders["pythae"] = lambda: pythae_loop(x, work)
    except ImportError:
        print("pythae not installed: skipped (pip install 'pythae==0.1.2')", file=sys.stderr)
    n = 8192 if dev.startswith("cuda") else 2048
    peaks = {"fp32": matmul_peak(torch.float32, n, device=dev), "bf16": matmul_peak(torch.bfloat16, n, device=dev)}
    times: dict[str, list[float]] = {k: [] for k in contenders}
    order_rng = random.Random(0)
    for r in range(args.rounds):
        order = list(contenders.items())
        order_rng.shuffle(order)
        for name, fn in order:
            torch.manual_seed(r)
            sync(dev)
            t = time.perf_counter()
            fn()
            sync(dev)
            times[name].append(time.perf_counter() - t)
            print(f"round {r} {name}: {len(x) / times[name][-1]:.0f} samples/s", file=sys.stderr, flush=True)
    rate = {k: len(x) / statistics.median(v) for k, v in times.items()}
    res = {"samples_per_s": rate, "epoch_seconds": times, "rounds": args.rounds, "threads": args.threads,
           "batch_size": 100, "n": len(x), "train_flop_per_sample": TRAIN_FLOP, "matmul_peak_gflops": peaks,
           "achieved_gflops": {k: v * TRAIN_FLOP / 1e9 for k, v in rate.items()},
           "ratio_vs_bare": {k: v / rate["bare"] for k, v in rate.items()},
           "device": dev, "torch": torch.__version__, "cpu_count": os.cpu_count(), **provenance(argv, args.threads)}

    def pairwise(base: str) -> dict[str, dict[str, float]]:
        """Per-round ratio of samples/s (= base time / contender time), min / median / max over rounds."""
        out = {}
        for k in times:
            r = [tb / tk for tb, tk in zip(times[base], times[k])]
            out[k] = {"min": min(r), "median": statistics.median(r), "max": max(r)}
        return out

    res["ratio_vs_bare_per_round"] = pairwise("bare")
    res["ratio_vs_bare_fused_per_round"] = pairwise("bare-fused")
    if "pythae" in rate:
        res["ratio_vs_pythae"] = {k: v / rate["pythae"] for k, v in rate.items()}
        res["ratio_vs_pythae_per_round"] = pairwise("pythae")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "result.json", json.dumps(res, indent=2))
    print(json.dumps({k: res[k] for k in ("samples_per_s", "ratio_vs_bare", "matmul_peak_gflops",
                                          "achieved_gflops")}, indent=1))
    print(json.dumps(res.get("ratio_vs_pythae", {})))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
