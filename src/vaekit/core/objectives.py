"""Training objectives. Each is a callable object: ``loss_fn(model, x, c, step_fraction) → LossOutput``."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vaekit.core.model import VAE


@dataclass
class LossOutput:
    """``loss`` to minimise (scalar) and per-batch means of the terms, for logging."""

    loss: torch.Tensor
    recon: torch.Tensor  # −E_q log p(x|z)
    kl: torch.Tensor  # KL(q ‖ p) (Monte-Carlo when the prior has no closed form)
    elbo: torch.Tensor  # E_q log p(x|z) − KL (β = 1, no free bits): the bound itself


def kl_per_dim(model: VAE, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) ‖ p(z)) per latent dimension (N, d), closed form if the prior has one."""
    kl = model.prior.kl(mu, logvar)
    if kl is not None:
        return kl
    # Monte-Carlo single-sample estimate, spread evenly over dimensions
    total = model.log_q(z, mu, logvar) - model.prior.log_prob(z)
    return (total / mu.shape[-1]).unsqueeze(-1).expand_as(mu)


class ELBO:
    """L = E_q[log p(x|z)] − β_t · Σ_d max(KL_d, λ);  β_t = β·min(1, t / warm-up) (β-VAE, KL warm-up, free bits λ)."""

    def __init__(self, beta: float = 1.0, warmup: float = 0.0, free_bits: float = 0.0) -> None:
        self.beta, self.warmup, self.free_bits = beta, warmup, free_bits

    def beta_at(self, epoch_progress: float) -> float:
        if self.warmup <= 0:
            return self.beta
        return self.beta * min(1.0, epoch_progress / self.warmup)

    def __call__(self, model: VAE, x: torch.Tensor, c: torch.Tensor | None = None,
                 epoch_progress: float = math.inf) -> LossOutput:
        out = model(x, c)
        log_px = model.log_px(out.params, x)
        kl_d = kl_per_dim(model, out.mu, out.logvar, out.z)
        kl = kl_d.sum(-1)
        if self.free_bits > 0:
            kl_term = kl_d.mean(0).clamp(min=self.free_bits).sum()
        else:
            kl_term = kl.mean()
        recon = -log_px.mean()
        loss = recon + self.beta_at(epoch_progress) * kl_term
        return LossOutput(loss, recon.detach(), kl.mean().detach(), (log_px - kl).mean().detach())


class IWAE(ELBO):
    """L_k = E[log (1/k) Σ_i p(x, z_i) / q(z_i|x)], z_i ~ q(z|x) (Burda et al. 2015); warm-up scales log p(z)/q(z|x)."""

    def __init__(self, k: int = 5, beta: float = 1.0, warmup: float = 0.0) -> None:
        super().__init__(beta, warmup, 0.0)
        self.k = k

    def __call__(self, model: VAE, x: torch.Tensor, c: torch.Tensor | None = None,
                 epoch_progress: float = math.inf) -> LossOutput:
        out = model(x, c, k=self.k)
        log_px = model.log_px(out.params, x)  # (k, N)
        log_ratio = model.prior.log_prob(out.z) - model.log_q(out.z, out.mu, out.logvar)
        log_w = log_px + self.beta_at(epoch_progress) * log_ratio
        bound = torch.logsumexp(log_w, 0) - math.log(self.k)
        kl = model.prior.kl(out.mu, out.logvar)
        kl_mean = kl.sum(-1).mean() if kl is not None else -log_ratio.mean()
        return LossOutput(-bound.mean(), -log_px.mean().detach(), kl_mean.detach(),
                          (log_px + log_ratio).mean().detach())


def make_objective(name: str, *, beta: float = 1.0, warmup: float = 0.0, free_bits: float = 0.0,
                   k: int = 5) -> ELBO:
    if name == "iwae":
        return IWAE(k=k, beta=beta, warmup=warmup)
    return ELBO(beta=beta, warmup=warmup, free_bits=free_bits)
