"""The VAE: q(z|x) = N(μ(x), diag σ²(x)), z = μ + σ·ε, p(x|z) from a likelihood, p(z) from a prior.

Contract: ``forward(x)`` returns a :class:`VAEOutput` holding the decoder parameters, the latent draw and the
posterior; ``log_px`` scores data under decoder parameters. Losses live in :mod:`vaekit.core.objectives`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.core.config import ModelConfig
from vaekit.core.likelihoods import LIKELIHOODS, Likelihood
from vaekit.core.nn import make_decoder, make_encoder
from vaekit.core.nn.blocks import ColumnVariance
from vaekit.core.priors import PRIORS, Prior, gaussian_log_prob


@dataclass
class VAEOutput:
    """Decoder parameters ``params`` (…, N, P, D), latent ``z`` (…, N, d), posterior ``mu``/``logvar`` (N, d)."""

    params: torch.Tensor
    z: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor


class VAE(nn.Module):
    """log p(x) ≥ E_q[log p(x|z)] − KL(q(z|x) ‖ p(z)), with encoder ``g_a``-style ``encoder`` and decoder."""

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

    def encode(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ²) of q(z|x); log σ² is softly kept in [logvar_min, logvar_max]."""
        h = self.encoder(self._with_condition(x.flatten(1), c))
        mu, raw = self.to_posterior(h).chunk(2, dim=-1)
        lo, hi = self.config.logvar_min, self.config.logvar_max
        logvar = lo + F.softplus(hi - F.softplus(hi - raw) - lo)
        return mu, logvar

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
        mu, logvar = self.encode(x, c)
        z = self.reparameterize(mu, logvar, k, generator)
        return VAEOutput(self.decode(z, c), z, mu, logvar)

    # --- conveniences --------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0,
               c: torch.Tensor | None = None, mean: bool = True) -> torch.Tensor:
        """x ~ p(x|z), z ~ p(z) (scaled by temperature); ``mean=True`` returns E[x|z] instead of a draw."""
        z = self.prior.sample(n, generator, temperature).to(next(self.parameters()).device)
        params = self.decode(z, c)
        return self.likelihood.mean(params) if mean else self.likelihood.sample(params, generator)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z = μ(x)]."""
        mu, _ = self.encode(x, c)
        return self.likelihood.mean(self.decode(mu, c))
