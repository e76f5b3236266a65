"""The VAE: q(z|x) = N(μ(x), diag σ²(x)), z = μ + σ·ε (optionally through a flow), p(x|z) from a likelihood,
p(z) from a prior.

Contract: ``forward(x, c, k)`` returns a :class:`VAEOutput` holding the decoder parameters, the latent draw, the
posterior and, per draw, log p(z) and log q(z|x) (per layer for hierarchical models, :meth:`VAE.kl_groups`);
``log_px`` scores data under decoder parameters. Losses live in :mod:`vaekit.core.objectives`. The importance
sampler (:mod:`vaekit.core.inference`) uses ``posterior_state`` / ``draw_latents``: the amortised part once per
batch, then log p(z) and log q(z|x) for any block of noise ε. ``VAE(cfg)`` with ``cfg.stochastic_layers > 1``
builds the hierarchical model (:mod:`vaekit.core.hierarchical`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.core.config import ModelConfig
from vaekit.core.flows import POSTERIORS
from vaekit.core.likelihoods import LIKELIHOODS, Likelihood
from vaekit.core.nn import make_decoder, make_encoder
from vaekit.core.nn.blocks import ColumnVariance
from vaekit.core.priors import PRIORS, Prior, gaussian_log_prob, gaussian_log_prob_dims, gaussian_log_q
from vaekit.registry import Registry

MODEL_FAMILIES: Registry[type[VAE]] = Registry("model family")  # subclasses VAE(cfg) builds for some configs
KLGroup = tuple[torch.Tensor, int]  # (log q − log p terms (…, N, g), latent dimensions each term covers)


@dataclass
class VAEOutput:
    """Decoder parameters ``params`` (…, N, P, D), latent ``z`` (…, N, d), posterior ``mu``/``logvar`` (N, d), and
    per draw ``log_pz`` = log p(z), ``log_qz`` = log q(z|x) (…, N).

    For an IAF posterior ``mu``/``logvar`` are the per-draw effective Gaussian (log N(z; μ, σ²) = log q(z|x));
    for a hierarchical model ``z``/``mu``/``logvar`` concatenate the layers bottom first (…, N, L·d) and
    ``kl_layers`` holds each layer's log q − log p per dimension."""

    params: torch.Tensor
    z: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    log_pz: torch.Tensor | None = None
    log_qz: torch.Tensor | None = None
    kl_layers: list[KLGroup] | None = None


@dataclass
class PosteriorState:
    """The amortised part of q(z|x) for a batch: top/base Gaussian ``mu``/``logvar`` (N, d) and ``context``
    (encoder features the flow or the top-down pass needs)."""

    mu: torch.Tensor
    logvar: torch.Tensor
    context: tuple[torch.Tensor, ...] = ()

    def float(self) -> PosteriorState:
        return PosteriorState(self.mu.float(), self.logvar.float(), tuple(t.float() for t in self.context))

    def rows(self, sl: slice) -> PosteriorState:
        return PosteriorState(self.mu[sl], self.logvar[sl], tuple(t[sl] for t in self.context))


def soft_logvar(raw: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """log σ² softly kept in [lo, hi]: lo + softplus(hi − softplus(hi − raw) − lo)."""
    return lo + F.softplus(hi - F.softplus(hi - raw) - lo)


def noise(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """ε ~ N(0, I) of ``shape`` on ``like``'s device; a generator draws on its own device (the same on CPU and GPU)."""
    if generator is not None:
        return torch.randn(shape, generator=generator, device=generator.device, dtype=like.dtype).to(like.device)
    return torch.randn(shape, device=like.device, dtype=like.dtype)


class VAE(nn.Module):
    """log p(x) ≥ E_q[log p(x|z)] − KL(q(z|x) ‖ p(z)), with encoder ``g_a``-style ``encoder`` and decoder."""

    def __new__(cls, config: ModelConfig | None = None, *args: Any, **kwargs: Any) -> VAE:
        """``VAE(cfg)`` is the model ``cfg`` describes: the hierarchical subclass for ``stochastic_layers > 1``."""
        if cls is VAE and config is not None and getattr(config, "stochastic_layers", 1) > 1:
            cls = MODEL_FAMILIES.get("hierarchical")  # registered by vaekit.core.hierarchical (core/__init__)
        return super().__new__(cls)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.likelihood: Likelihood = LIKELIHOODS.get(config.likelihood).from_config(config)
        self.encoder = make_encoder(config)
        self.to_posterior = nn.Linear(self.encoder.out_dim, 2 * config.latent_dim)
        self.decoder = make_decoder(config, self.likelihood.n_params, self.likelihood.out_dim)
        if config.obs_variance == "column":
            mask = self.likelihood.logvar_mask(self.decoder.data_dim)
            assert mask is not None
            self.decoder = ColumnVariance(self.decoder, mask)
        self.prior: Prior = PRIORS.get(config.prior).from_config(config)
        self.flow = POSTERIORS.get(config.posterior).build(config, self.encoder.out_dim)  # None: Gaussian q
        self.prior.bind(self)

    def __getstate__(self) -> dict[str, object]:
        """Pickling (e.g. shipping a model to Dask workers) leaves out the torch.compile cache of
        :mod:`vaekit.core.inference`, which cannot be pickled and is rebuilt on demand."""
        state = dict(super().__getstate__())
        state.pop("_vaekit_compiled", None)
        return state

    # --- encoder -------------------------------------------------------------------------------
    def _with_condition(self, t: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        if self.config.n_conditions == 0:
            return t
        if c is None:
            raise ValueError("this model is conditional: pass the condition c (one-hot, N × n_conditions)")
        if c.dim() == 1:
            c = F.one_hot(c.long(), self.config.n_conditions).to(t.dtype)
        if t.dim() == 3 and c.dim() == 2:
            c = c.expand(t.shape[0], *c.shape)
        return torch.cat([t, c.to(t.dtype)], -1)

    def _gaussian(self, x: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(μ, log σ², h): the Gaussian part of q(z|x) and the encoder features h it was computed from."""
        h = self.encoder(self._with_condition(x.flatten(1), c))
        mu, raw = self.to_posterior(h).chunk(2, dim=-1)
        lo, hi = self.config.logvar_min, self.config.logvar_max
        logvar = lo + F.softplus(hi - F.softplus(hi - raw) - lo)
        return mu, logvar, h

    def encode(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ²) of q(z|x); log σ² is softly kept in [logvar_min, logvar_max]. With an IAF posterior: the
        effective Gaussian of the flow at ε = 0 (μ is the flow's image of the base mean)."""
        mu, logvar, h = self._gaussian(x, c)
        if self.flow is None:
            return mu, logvar
        _, mu_f, logvar_f, _ = self.flow(mu, mu, logvar, h)
        return mu_f, logvar_f

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, k: int = 0,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """z = μ + σ·ε, ε ~ N(0, I); k > 0 draws k samples → (k, N, d)."""
        shape = (k, *mu.shape) if k else mu.shape
        if generator is not None:  # private draws come from the generator's device: the same on CPU and GPU
            eps = torch.randn(shape, generator=generator, device=generator.device, dtype=mu.dtype).to(mu.device)
        else:
            eps = torch.randn(shape, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def log_q(self, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return gaussian_log_prob(z, mu, logvar)

    # --- decoder -------------------------------------------------------------------------------
    def decode(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder parameters θ(z), shape (…, P, D)."""
        return self.decoder(self._with_condition(z, c))

    def log_px(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x|z) per example."""
        return self.likelihood.log_prob(params, x.flatten(1))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None, k: int = 0,
                generator: torch.Generator | None = None) -> VAEOutput:
        """Draws z ~ q(z|x) (k > 0: k per row) → decoder parameters, z, q's parameters, log p(z), log q(z|x)."""
        mu, logvar, h = self._gaussian(x, c)
        z = self.reparameterize(mu, logvar, k, generator)
        if self.flow is None:
            params = self.decode(z, c)
            return VAEOutput(params, z, mu, logvar, self.prior.log_prob(z), self.log_q(z, mu, logvar))
        z_t, mu_t, logvar_t, log_det = self.flow(z, mu, logvar, h)
        params = self.decode(z_t, c)
        return VAEOutput(params, z_t, mu_t, logvar_t, self.prior.log_prob(z_t), self.log_q(z, mu, logvar) - log_det)

    # --- what objectives and the importance sampler use ----------------------------------------
    def analytic_kl(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor | None:
        """Closed-form KL(q(z|x) ‖ p(z)) per dimension (N, d), or None (flow posterior, mixture or hierarchical
        prior): then objectives use the Monte-Carlo log q(z|x) − log p(z)."""
        return self.prior.kl(mu, logvar) if self.flow is None else None

    def kl_groups(self, out: VAEOutput) -> list[KLGroup]:
        """log q − log p of each draw split where free bits act: per dimension for a Gaussian posterior and a
        factorised prior, else one term per layer (covering its latent_dim dimensions)."""
        if out.kl_layers is not None:
            return out.kl_layers
        assert out.log_pz is not None and out.log_qz is not None
        if self.flow is None and self.prior.factorized:
            return [(gaussian_log_prob_dims(out.z, out.mu, out.logvar) - self.prior.log_prob_dims(out.z), 1)]
        return [((out.log_qz - out.log_pz).unsqueeze(-1), self.config.latent_dim)]

    @property
    def noise_dim(self) -> int:
        """Width of the noise ε behind one draw of z (all layers' for a hierarchical model)."""
        return self.config.latent_dim

    def posterior_state(self, x: torch.Tensor, c: torch.Tensor | None = None) -> PosteriorState:
        """The amortised part of q(z|x), computed once per batch."""
        mu, logvar, h = self._gaussian(x, c)
        return PosteriorState(mu, logvar, () if self.flow is None else (h,))

    def draw_latents(self, state: PosteriorState,
                     eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z = μ + σ·ε (then the flow) for ε (…, N, noise_dim) → (z for ``decode``, log p(z), log q(z|x)), with
        log q from ε directly: −½ Σ (ε² + log σ² + log 2π) − log-det of the flow."""
        mu, logvar = state.mu, state.logvar
        z = mu + torch.exp(0.5 * logvar) * eps
        log_qz = gaussian_log_q(eps, logvar)
        if self.flow is not None:
            z, _, _, log_det = self.flow(z, mu, logvar, state.context[0])
            log_qz = log_qz - log_det
        return z, self.prior.log_prob(z), log_qz

    # --- conveniences --------------------------------------------------------------------------
    @torch.no_grad()
    def sample_latents(self, n: int, generator: torch.Generator | None = None,
                       temperature: float = 1.0) -> torch.Tensor:
        """z ~ p(z) (scaled by temperature), n rows in the space ``decode`` takes (on the generator's device)."""
        return self.prior.sample(n, generator, temperature)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0,
               c: torch.Tensor | None = None, mean: bool = True) -> torch.Tensor:
        """x ~ p(x|z), z ~ p(z) (scaled by temperature); ``mean=True`` returns E[x|z] instead of a draw."""
        z = self.sample_latents(n, generator, temperature).to(next(self.parameters()).device)
        params = self.decode(z, c)
        return self.likelihood.mean(params) if mean else self.likelihood.sample(params, generator)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z = μ(x)]."""
        mu, _ = self.encode(x, c)
        return self.likelihood.mean(self.decode(mu, c))
