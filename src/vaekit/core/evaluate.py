"""Evaluation: importance-sampled log-likelihood, ELBO terms, bits/dim and active units.

log p(x) ≈ log (1/k) Σ_i p(x|z_i) p(z_i) / q(z_i|x),  z_i ~ q(z|x)   (Burda et al. 2015), k up to thousands,
computed in chunks of samples so memory stays bounded. ``precision='bf16'`` runs the decoder's matmuls in
bfloat16 (log-weights still accumulate in float32); the benchmark reports its deviation from fp32.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from vaekit.core.inference import log_weights
from vaekit.core.model import VAE
from vaekit.runtime import all_reduce, autocast, progress_bar

ACTIVE_VARIANCE = 1e-2  # a latent unit is active when Var_x[μ_u(x)] exceeds this (Burda et al. 2015)


def active_units(mu: torch.Tensor) -> int:
    """Latent units whose posterior mean varies over the examples: #{u : Var_x μ_u(x) > ACTIVE_VARIANCE}."""
    return int((mu.var(0) > ACTIVE_VARIANCE).sum()) if len(mu) > 1 else 0


@torch.no_grad()
def count_active_units(model: VAE, x: torch.Tensor, c: torch.Tensor | None = None, batch_size: int = 500) -> int:
    """:func:`active_units` of the encoder means on the examples x (on the model's device, in batches)."""
    dev = next(model.parameters()).device
    mus = [model.encode(x[i:i + batch_size].to(dev), None if c is None else c[i:i + batch_size].to(dev))[0].float()
           for i in range(0, len(x), batch_size)]
    return active_units(torch.cat(mus)) if mus else 0


@torch.no_grad()
def evaluate(model: VAE, x: torch.Tensor, k: int = 5000, batch_size: int = 100, c: torch.Tensor | None = None,
             seed: int = 0, precision: str = "fp32", dequantized_8bit: bool = False,
             memory_mb: float = 256.0, progress: bool = False, compile: bool | None = None) -> dict[str, Any]:
    """Test metrics: ``nll`` (IS, k samples), ``elbo``, ``recon``, ``kl``, ``bits_per_dim``, ``active_units``.

    ``compile=None`` compiles the decoder + likelihood with torch.compile when the job is large
    (N·k ≥ 10⁷ draws), where the one-off compile time pays for itself.
    bits/dim = nll / (D ln 2), plus 8 for continuous likelihoods on dequantized 8-bit data (bin width 1/256).
    """
    gen = torch.Generator().manual_seed(seed)
    if compile is None:
        compile = len(x) * k >= 10_000_000
    nll, elbo, recon, kl_all, mus = [], [], [], [], []
    it = range(0, len(x), batch_size)
    if progress:
        it = progress_bar(iterable=it, desc=f"IS-NLL k={k}", leave=False) or it
    for i in it:
        xb = x[i:i + batch_size]
        cb = None if c is None else c[i:i + batch_size]
        lw, lpx, kl = log_weights(model, xb, k, cb, gen, precision, memory_mb, compile)
        nll.append(-(torch.logsumexp(lw, 0) - math.log(k)))
        rec = -lpx.mean(0)
        recon.append(rec)
        elbo.append(-rec - kl)
        kl_all.append(kl)
        with autocast(precision, xb.device):
            mus.append(model.encode(xb, cb)[0].float())
    nll_t, elbo_t = torch.cat(nll), torch.cat(elbo)
    d = model.config.data_dim
    nll_mean = float(nll_t.mean())
    bpd = nll_mean / (d * math.log(2)) + (8.0 if dequantized_8bit else 0.0)
    mu_all = torch.cat(mus)
    au = active_units(mu_all)
    return {"nll": nll_mean, "nll_sem": float(nll_t.std() / math.sqrt(len(nll_t))) if len(nll_t) > 1 else 0.0,
            "elbo": float(elbo_t.mean()), "recon": float(torch.cat(recon).mean()),
            "kl": float(torch.cat(kl_all).mean()), "bits_per_dim": bpd, "active_units": au,
            "latent_dim": model.config.latent_dim, "k": k, "n": len(x), "precision": precision}


def per_example_scores(model: VAE, x: torch.Tensor, k: int = 1, batch_size: int = 500, seed: int = 0,
                       c: torch.Tensor | None = None) -> np.ndarray:
    """−log p(x) per example (IS with k samples; k = 1 gives the negative single-sample ELBO)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, len(x), batch_size):
        cb = None if c is None else c[i:i + batch_size]
        lw, _, _ = log_weights(model, x[i:i + batch_size], k, cb, gen)
        out.append(-(torch.logsumexp(lw, 0) - math.log(k)))
    return torch.cat(out).cpu().numpy()


@torch.no_grad()
def validate(model: VAE, x: torch.Tensor, c: torch.Tensor | None, batch_size: int, precision: str,
             seed: int, k: int = 1) -> dict[str, float]:
    """Mean ELBO terms on held-out data with a fixed-seed draw (does not touch the global RNG);
    with k > 1 also the IWAE bound ``iwae`` = E log (1/k) Σ w_i."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)  # CPU draws, moved to the device: same on every device
    tot = {"elbo": 0.0, "recon": 0.0, "kl": 0.0}
    if k > 1:
        tot["iwae"] = 0.0
        for i in range(0, len(x), batch_size):
            cb = None if c is None else c[i:i + batch_size]
            lw, _, _ = log_weights(model, x[i:i + batch_size], k, cb, gen, precision)
            tot["iwae"] += float((torch.logsumexp(lw, 0) - math.log(k)).sum())
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        cb = None if c is None else c[i:i + batch_size]
        with autocast(precision, xb.device):
            out = model(xb, cb, generator=gen)
        log_px = model.log_px(out.params.float(), xb)
        kl = model.analytic_kl(out.mu.float(), out.logvar.float())
        kl = kl.sum(-1) if kl is not None else (out.log_qz - out.log_pz).float()
        tot["elbo"] += float((log_px - kl).sum())
        tot["recon"] += float(-log_px.sum())
        tot["kl"] += float(kl.sum())
    model.train()
    return {k: v / len(x) for k, v in tot.items()}


def validate_sharded(model: VAE, x: torch.Tensor, c: torch.Tensor | None, batch_size: int, precision: str,
                     seed: int, k: int, rank: int, size: int) -> dict[str, float]:
    """:func:`validate` with the rows split over the ranks (rank r takes rows r, r+size, …) and the sums reduced,
    so every rank gets the same figures."""
    if size == 1:
        return validate(model, x, c, batch_size, precision, seed, k)
    xs, cs = x[rank::size], None if c is None else c[rank::size]
    part = validate(model, xs, cs, batch_size, precision, seed + rank, k) if len(xs) else {}
    keys = ["elbo", "recon", "kl"] + (["iwae"] if k > 1 else [])
    tot = all_reduce(torch.tensor([part.get(key, 0.0) * len(xs) for key in keys], dtype=torch.float64,
                                  device=x.device))
    return {key: float(v) / len(x) for key, v in zip(keys, tot.tolist())}
