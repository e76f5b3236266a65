"""Priors p(z) behind one small interface, so VampPrior / flows / hierarchical priors plug in later.

A prior registers under its config name in ``PRIORS`` (``@PRIORS.register("my_prior")``); the VAE builds it with
``PRIORS.get(cfg.prior).from_config(cfg)``, by default ``cls(cfg.latent_dim)``.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from vaekit.registry import Registry

LOG_2PI = math.log(2 * math.pi)

PRIORS: Registry[type[Prior]] = Registry("prior")


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; μ, diag exp(logvar)) summed over the last dimension."""
    return -0.5 * (((z - mu) ** 2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)


class Prior(nn.Module):
    """p(z): ``log_prob`` (…, d) → (…), ``sample`` (n) → (n, d); ``kl`` may return None (then Monte Carlo)."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    @classmethod
    def from_config(cls, cfg: Any) -> Prior:
        """The prior a ModelConfig ``cfg`` asks for; override to read more config fields than ``latent_dim``."""
        return cls(cfg.latent_dim)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        raise NotImplementedError

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor | None:
        """Closed-form KL(q(z|x) ‖ p(z)) per latent dimension, shape (N, d), or None if not available."""
        return None


@PRIORS.register("standard_normal")
class StandardNormal(Prior):
    """p(z) = N(0, I); KL(N(μ,σ²) ‖ N(0,1)) = ½(μ² + σ² − 1 − log σ²) per dimension."""

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)

    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        return temperature * torch.randn(n, self.latent_dim, generator=generator)

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)
