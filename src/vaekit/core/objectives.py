"""Training objectives. Each is a callable object: ``loss_fn(model, x, c, step_fraction) → LossOutput``.

Objectives register under their config name in ``OBJECTIVES``; ``from_options`` builds one from the TrainConfig
settings (β, warm-up, free bits, k), each objective taking those it uses. ``model`` is a :class:`vaekit.core.model.VAE`
(duck-typed here, so that the config can import this module without a cycle).

KL terms: closed form where the model has one (``model.analytic_kl``: Gaussian posterior, standard normal prior),
else the Monte-Carlo log q(z|x) − log p(z) of the draws (``VAEOutput.log_qz`` / ``log_pz``; mixture and VampPrior
priors, IAF posteriors, hierarchical models). Free bits act on ``model.kl_groups(out)``: per latent dimension where
q and p factorise (per layer and dimension for hierarchical models), else per layer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

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


def free_bits_kl(groups: list[tuple[torch.Tensor, int]], free_bits: float) -> torch.Tensor:
    """Σ_groups Σ_g max(E_batch KL_g, λ·dims_g): each KL term floored at λ nats per dimension it covers."""
    total = torch.zeros((), device=groups[0][0].device)
    for values, dims in groups:
        total = total + values.flatten(0, -2).mean(0).clamp(min=free_bits * dims).sum()
    return total


def free_bits_log_ratio(groups: list[tuple[torch.Tensor, int]], free_bits: float) -> torch.Tensor:
    """log p(z) − log q(z|x) per draw (…, N), with no gradient through the KL terms whose batch mean is below
    λ·dims (the IWAE counterpart of max(KL, λ): their value stays in the weights, their pull on q is freed)."""
    total = None
    for values, dims in groups:
        below = values.detach().flatten(0, -2).mean(0) < free_bits * dims
        term = torch.where(below, values.detach(), values).sum(-1)
        total = term if total is None else total + term
    assert total is not None
    return -total


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
        kl_d = model.analytic_kl(out.mu, out.logvar)
        if kl_d is not None:  # closed form per dimension (N, d)
            kl = kl_d.sum(-1)
            if self.free_bits > 0:
                kl_term = kl_d.mean(0).clamp(min=self.free_bits).sum()
            else:
                kl_term = kl.mean()
        else:  # Monte Carlo: log q(z|x) − log p(z) of the draw
            kl = out.log_qz - out.log_pz
            kl_term = free_bits_kl(model.kl_groups(out), self.free_bits) if self.free_bits > 0 else kl.mean()
        recon = -log_px.mean()
        loss = recon + self.beta_at(epoch_progress) * kl_term
        return LossOutput(loss, recon.detach(), kl.mean().detach(), (log_px - kl).mean().detach())


@OBJECTIVES.register("iwae")
class IWAE(ELBO):
    """L_k = E[log (1/k) Σ_i p(x, z_i) / q(z_i|x)], z_i ~ q(z|x) (Burda et al. 2015); warm-up scales log p(z)/q(z|x);
    free bits λ > 0 stop the gradient of the KL terms whose batch mean is below λ per dimension."""

    def __init__(self, k: int = 5, beta: float = 1.0, warmup: float = 0.0, free_bits: float = 0.0) -> None:
        super().__init__(beta, warmup, free_bits)
        self.k = k

    @classmethod
    def from_options(cls, *, beta: float = 1.0, warmup: float = 0.0, free_bits: float = 0.0, k: int = 5) -> ELBO:
        """The objective for the TrainConfig settings."""
        return cls(k=k, beta=beta, warmup=warmup, free_bits=free_bits)

    def __call__(self, model: Any, x: torch.Tensor, c: torch.Tensor | None = None,
                 epoch_progress: float = math.inf) -> LossOutput:
        out = model(x, c, k=self.k)
        log_px = model.log_px(out.params, x)  # (k, N)
        log_ratio = out.log_pz - out.log_qz
        if self.free_bits > 0:
            log_ratio = free_bits_log_ratio(model.kl_groups(out), self.free_bits)
        log_w = log_px + self.beta_at(epoch_progress) * log_ratio
        bound = torch.logsumexp(log_w, 0) - math.log(self.k)
        kl = model.analytic_kl(out.mu, out.logvar)
        kl_mean = kl.sum(-1).mean() if kl is not None else -log_ratio.mean()
        return LossOutput(-bound.mean(), -log_px.mean().detach(), kl_mean.detach(),
                          (log_px + log_ratio).mean().detach())


@OBJECTIVES.register("miwae")
class MIWAE(IWAE):
    """L_k = E log (1/k) Σ_i p(x_obs|z_i) p(z_i) / q(z_i|x̃), z_i = μ(x̃) + σ(x̃)·ε_i (Mattei & Frellsen 2019).

    IWAE on the observed entries of incomplete rows (the likelihood leaves out the missing ones; x̃ = zero-filled
    values + mask bits), log q from ε; the networks run in the caller's autocast, the weights in float32. β, warm-up
    and free bits do not apply. Any zoo model: z_i, log p(z_i) and log q(z_i|x̃) come from its ``draw_latents``.
    """

    def beta_at(self, epoch_progress: float) -> float:
        return 1.0  # no β, no warm-up

    def __call__(self, model: Any, x: torch.Tensor, c: torch.Tensor | None = None,
                 epoch_progress: float = math.inf,
                 extra: Callable[[torch.Tensor], torch.Tensor] | None = None) -> LossOutput:
        """``extra(params)`` (float32 decoder parameters (k, N, P, D)) → a further log-weight term (k, N) added to
        log p(x_obs|z), e.g. the missingness model of not-MIWAE."""
        state = model.posterior_state(x, c)  # any zoo model: z_i through its own draw_latents, exact log q and log p
        with torch.autocast(x.device.type, enabled=False):
            state = state.float()
            eps = torch.randn(self.k, len(x), model.noise_dim, device=state.mu.device)
            z, log_pz, log_q = model.draw_latents(state, eps)
        params = model.decode(z, c)
        with torch.autocast(x.device.type, enabled=False):
            params = params.float()
            log_px = model.likelihood.log_prob(params, x)
            lead = log_px if extra is None else log_px + extra(params)
            log_w = lead + log_pz - log_q
            loss = -(torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])).mean()
        return LossOutput(loss, -log_px.mean().detach(), (log_q - log_pz).mean().detach(), log_w.mean().detach())


def make_objective(name: str, *, beta: float = 1.0, warmup: float = 0.0, free_bits: float = 0.0,
                   k: int = 5) -> ELBO:
    """The objective registered as ``name`` (one-line VaekitError listing the known names otherwise)."""
    return OBJECTIVES.get(name).from_options(beta=beta, warmup=warmup, free_bits=free_bits, k=k)
