"""Training objectives. Each is a callable object: ``loss_fn(model, x, c, step_fraction) → LossOutput``.

Objectives register under their config name in ``OBJECTIVES``; ``from_options`` builds one from the TrainConfig
settings (β, warm-up, free bits, k), each objective taking those it uses. ``model`` is a :class:`vaekit.core.model.VAE`
(duck-typed here, so that the config can import this module without a cycle).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from vaekit.registry import Registry

OBJECTIVES: Registry[type[ELBO]] = Registry("objective")


@dataclass
class LossOutput:
    """``loss`` to minimise (scalar) and per-batch means of the terms, for logging."""

    loss: torch.Tensor
    recon: torch.Tensor  # −E_q log p(x|z)
    kl: torch.Tensor  # KL(q ‖ p) (Monte-Carlo when the prior has no closed form)
    elbo: torch.Tensor  # E_q log p(x|z) − KL (β = 1, no free bits): the bound itself


def kl_per_dim(model: Any, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) ‖ p(z)) per latent dimension (N, d), closed form if the prior has one."""
    kl = model.prior.kl(mu, logvar)
    if kl is not None:
        return kl
    # Monte-Carlo single-sample estimate, spread evenly over dimensions
    total = model.log_q(z, mu, logvar) - model.prior.log_prob(z)
    return (total / mu.shape[-1]).unsqueeze(-1).expand_as(mu)


@OBJECTIVES.register("elbo")
class ELBO:
    """L = E_q[log p(x|z)] − β_t · Σ_d max(KL_d, λ);  β_t = β·min(1, t / warm-up) (β-VAE, KL warm-up, free bits λ)."""

    def __init__(self, beta: float = 1.0, warmup: float = 0.0, free_bits: float = 0.0) -> None:
        self.beta, self.warmup, self.free_bits = beta, warmup, free_bits

    @classmethod
    def from_options(cls, *, beta: float = 1.0, warmup: float = 0.0, free_bits: float = 0.0, k: int = 5) -> ELBO:
        """The objective for the TrainConfig settings (``k`` is IWAE's number of samples, unused here)."""
        return cls(beta=beta, warmup=warmup, free_bits=free_bits)

    @classmethod
    def from_config(cls, cfg: Any) -> ELBO:
        """The objective a TrainConfig ``cfg`` asks for."""
        return cls.from_options(beta=cfg.beta, warmup=cfg.warmup_epochs, free_bits=cfg.free_bits, k=cfg.iwae_k)

    def beta_at(self, epoch_progress: float) -> float:
        if self.warmup <= 0:
            return self.beta
        return self.beta * min(1.0, epoch_progress / self.warmup)

    def __call__(self, model: Any, x: torch.Tensor, c: torch.Tensor | None = None,
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


@OBJECTIVES.register("iwae")
class IWAE(ELBO):
    """L_k = E[log (1/k) Σ_i p(x, z_i) / q(z_i|x)], z_i ~ q(z|x) (Burda et al. 2015); warm-up scales log p(z)/q(z|x)."""

    def __init__(self, k: int = 5, beta: float = 1.0, warmup: float = 0.0) -> None:
        super().__init__(beta, warmup, 0.0)
        self.k = k

    @classmethod
    def from_options(cls, *, beta: float = 1.0, warmup: float = 0.0, free_bits: float = 0.0, k: int = 5) -> ELBO:
        """The objective for the TrainConfig settings (free bits do not apply to the IWAE bound)."""
        return cls(k=k, beta=beta, warmup=warmup)

    def __call__(self, model: Any, x: torch.Tensor, c: torch.Tensor | None = None,
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
    """The objective registered as ``name`` (one-line VaekitError listing the known names otherwise)."""
    return OBJECTIVES.get(name).from_options(beta=beta, warmup=warmup, free_bits=free_bits, k=k)
