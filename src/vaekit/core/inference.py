"""The one importance-weighting kernel: log-weights from ε, self-normalised importance sampling, resampling.

    z_l = μ(x̃) + σ(x̃)·ε_l,   log w_l = log p(x|z_l) + log p(z_l) − log q(z_l|x̃),   ε_l ~ N(0, I)
IS-NLL: −log (1/k) Σ_l w_l (Burda et al. 2015). SNIS: E[f | x_obs] ≈ Σ_l w̄_l f(z_l), w̄ = softmax(log w).
SIR: draws with l* ~ Categorical(w̄) (Mattei & Frellsen 2019). log q is computed from ε directly (exact, cheaper).
Used by evaluation, the anomaly scores, imputation and inpainting.

Every model feeds :func:`log_weights` through its ``posterior_state`` (once per batch) and ``draw_latents``
(z, log p(z), log q(z|x) for a block of ε): the Gaussian VAE, mixture and VampPrior priors, IAF posteriors
(log q less the flow's log-determinant) and hierarchical models (all layers drawn top-down).
"""
from __future__ import annotations

import math
import warnings
from typing import Callable

import torch

from vaekit.core.model import VAE
from vaekit.core.priors import gaussian_log_q
from vaekit.errors import VaekitError
from vaekit.runtime import autocast

__all__ = ["gaussian_log_q", "log_mean_exp", "log_weights", "shared_eps", "snis", "sir", "effective_sample_size"]


def log_mean_exp(log_w: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log (1/k) Σ_l exp(log w_l) along ``dim``."""
    return torch.logsumexp(log_w, dim) - math.log(log_w.shape[dim])


def _logpx_eager(model: VAE, precision: str) -> Callable[..., torch.Tensor]:
    def logpx(z: torch.Tensor, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        with autocast(precision, z.device):
            params = model.decode(z, c)
        return model.log_px(params.float(), x)
    return logpx


def _logpx_fn(model: VAE, precision: str, compile: bool) -> Callable[..., torch.Tensor]:
    """log p(x|z) for a chunk of draws; with ``compile`` the decoder and the likelihood are fused by
    torch.compile (elementwise work such as softplus dominates at large k), falling back to eager on failure."""
    eager = _logpx_eager(model, precision)
    if not compile:
        return eager
    cache = model.__dict__.setdefault("_vaekit_compiled", {})
    if precision not in cache:
        cache[precision] = torch.compile(_logpx_eager(model, precision), dynamic=False)
    compiled = cache[precision]

    def guarded(z: torch.Tensor, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        if cache.get("failed"):
            return eager(z, x, c)
        try:
            return compiled(z, x, c)
        except Exception as e:  # no C++ compiler, unsupported op…: same numbers, eager speed
            warnings.warn(f"torch.compile unavailable ({e.__class__.__name__}); evaluating eagerly", stacklevel=3)
            cache["failed"] = True
            return eager(z, x, c)
    return guarded


def _chunk_sizes(batch: int, data_dim: int, n_params: int, k: int, budget_mb: float) -> int:
    per_sample = batch * data_dim * max(2, n_params) * 4 * 3  # params + log-prob temporaries
    return max(1, min(k, int(budget_mb * 2**20 // max(1, per_sample))))


@torch.no_grad()
def log_weights(model: VAE, x: torch.Tensor, k: int, c: torch.Tensor | None = None,
                generator: torch.Generator | None = None, precision: str = "fp32",
                memory_mb: float = 256.0, compile: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log w_i = log p(x|z_i) + log p(z_i) − log q(z_i|x) for k draws → (log_w (k, N), log_px (k, N), kl (N,))."""
    model.eval()
    with autocast(precision, x.device):
        state = model.posterior_state(x, c)
    state = state.float()
    mu, logvar = state.mu, state.logvar
    kc = _chunk_sizes(len(x), model.config.data_dim, model.likelihood.n_params, k, memory_mb)
    logpx = _logpx_fn(model, precision, compile)
    lw, lpx = [], []
    done = 0
    while done < k:
        m = min(kc, k - done)
        eps = torch.randn((m, len(x), model.noise_dim), generator=generator,
                          device=generator.device if generator is not None else mu.device).to(mu.device)
        # z and log p(z), log q(z|x) with q's quadratic term from ε directly (exact, cheaper)
        z, log_pz, log_qz = model.draw_latents(state, eps)
        log_px = logpx(z, x, c)
        lw.append(log_px + log_pz - log_qz)
        lpx.append(log_px)
        done += m
    kl = model.analytic_kl(mu, logvar)
    kl_n = kl.sum(-1) if kl is not None else -(torch.cat(lw) - torch.cat(lpx)).mean(0)
    return torch.cat(lw), torch.cat(lpx), kl_n


Fn = Callable[..., torch.Tensor]  # (decoder params (L, B, P, D), rows of the batch[, noise rows]) → values


def shared_eps(n_samples: int, latent_dim: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """ε_1..ε_L ~ N(0, I), (L, d), from a seeded generator (the same for every row)."""
    if n_samples < 1:
        raise VaekitError(f"the number of importance samples must be >= 1, got {n_samples}")
    return torch.randn(n_samples, latent_dim, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _check_eps(model: VAE, eps: torch.Tensor) -> None:
    if eps.dim() != 2 or eps.shape[1] != model.noise_dim:
        raise VaekitError(f"shared draws must be (L, {model.noise_dim}) for this model (its noise width), "
                          f"got {tuple(eps.shape)}")


def _rows_per_chunk(model: VAE, chunk: int, memory_mb: float) -> int:
    """Rows per chunk so that ~3 live (chunk, rows, width) float32 tensors fit in ``memory_mb``."""
    width = max(max(model.config.hidden, default=1), int(model.decoder.widest))  # the decoder knows its widest layer
    return max(1, int(memory_mb * 2**20 // (3 * chunk * width * 4)))


@torch.no_grad()
def snis(model: VAE, x_in: torch.Tensor, log_lik: Fn, stat: Fn, eps: torch.Tensor, chunk: int = 128,
         memory_mb: float = 96.0, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ_l w̄_l f(θ(z_l)) per row with w̄ ∝ p(x_obs|z_l) p(z_l) / q(z_l|x̃) → (expectations (N, F), log w (L, N)).

    z_l, log p(z_l) and log q(z_l|x̃) come from the model's ``draw_latents`` for the shared ε_l (L, noise_dim), so
    every zoo model (mixture/VampPrior priors, IAF posteriors, hierarchical layers) is weighted exactly.

    ``log_lik(params, rows)`` = log p(x_obs | z) (L', B); ``stat(params, rows)`` = E[f(x) | z] (L', B, F).
    ``noise`` (L, J): further shared draws that belong to sample l (e.g. of the missing entries, not-MIWAE); the
    callbacks then get a third argument, the draws' rows (L', 1, J).
    Streams over chunks of samples (online log-sum-exp) and rows, so memory stays within ~``memory_mb``.
    """
    model.eval()
    dt = eps.dtype
    _check_eps(model, eps)
    rows = _rows_per_chunk(model, chunk, memory_mb)
    means, lws = [], []
    for a in range(0, len(x_in), rows):
        sl = slice(a, min(a + rows, len(x_in)))
        state = model.posterior_state(x_in[sl].to(dt))
        top = acc = tot = None
        lw_parts = []
        for b in range(0, len(eps), chunk):
            e = eps[b:b + chunk, None, :].expand(-1, sl.stop - sl.start, -1)  # (L', B, noise_dim)
            z, log_pz, log_qz = model.draw_latents(state, e)
            params = model.decode(z)
            more = () if noise is None else (noise[b:b + chunk, None, :],)
            lw = log_lik(params, sl, *more) + log_pz - log_qz
            f = stat(params, sl, *more)
            m = lw.max(0).values if top is None else torch.maximum(top, lw.max(0).values)
            w = torch.exp(lw - m)
            if top is None:
                acc, tot = (w.unsqueeze(-1) * f).sum(0), w.sum(0)
            else:
                r = torch.exp(top - m)
                acc, tot = acc * r.unsqueeze(-1) + (w.unsqueeze(-1) * f).sum(0), tot * r + w.sum(0)
            top = m
            lw_parts.append(lw)
        means.append(acc / tot.unsqueeze(-1))
        lws.append(torch.cat(lw_parts))
    return torch.cat(means), torch.cat(lws, 1)


@torch.no_grad()
def sir(model: VAE, x_in: torch.Tensor, log_w: torch.Tensor, eps: torch.Tensor, m: int, draw: Fn,
        generator: torch.Generator | None = None, memory_mb: float = 96.0,
        noise: torch.Tensor | None = None) -> torch.Tensor:
    """m draws per row: l* ~ Categorical(softmax(log w)), z = z(ε_l*) as in :func:`snis`, x ~ p(x | z) → (m, N, F);
    with ``noise`` (L, J), ``draw`` gets the chosen draws' rows of it (m, B, J) as a third argument."""
    dt = eps.dtype
    _check_eps(model, eps)
    rows = _rows_per_chunk(model, max(1, m), memory_mb)
    out = []
    for a in range(0, len(x_in), rows):
        sl = slice(a, min(a + rows, len(x_in)))
        state = model.posterior_state(x_in[sl].to(dt))
        probs = torch.softmax(log_w[:, sl].double(), 0).T  # (B, L)
        idx = torch.multinomial(probs, m, replacement=True, generator=generator).T  # (m, B)
        z, _, _ = model.draw_latents(state, eps[idx])
        out.append(draw(model.decode(z), sl, *(() if noise is None else (noise[idx],))))
    return torch.cat(out, 1)


def effective_sample_size(log_w: torch.Tensor) -> torch.Tensor:
    """ESS = 1 / Σ_l w̄_l² per row (between 1 and L)."""
    w = torch.softmax(log_w.double(), 0)
    return 1.0 / (w ** 2).sum(0)
