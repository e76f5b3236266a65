"""Priors p(z) behind one small interface: the standard normal, a mixture of Gaussians and the VampPrior.

A prior registers under its config name in ``PRIORS`` (``@PRIORS.register("my_prior")``); the VAE builds it with
``PRIORS.get(cfg.prior).from_config(cfg)``, by default ``cls(cfg.latent_dim)``, then calls ``prior.bind(model)``
(the VampPrior encodes its pseudo-inputs with the model's encoder).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from vaekit.errors import VaekitError
from vaekit.registry import Registry

LOG_2PI = math.log(2 * math.pi)

PRIORS: Registry[type[Prior]] = Registry("prior")


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; μ, diag exp(logvar)) summed over the last dimension."""
    return -0.5 * (((z - mu) ** 2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)


def gaussian_log_prob_dims(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z_d; μ_d, exp(logvar_d)) per dimension (…, d)."""
    return -0.5 * (((z - mu) ** 2) * torch.exp(-logvar) + logvar + LOG_2PI)


def gaussian_log_q(eps: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log q(z|x) at z = μ + σ·ε, from ε: −½ Σ_d (ε_d² + log σ_d² + log 2π)."""
    return -0.5 * (eps.pow(2) + logvar + math.log(2 * math.pi)).sum(-1)


def mixture_log_prob(z: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor,
                     log_weights: torch.Tensor) -> torch.Tensor:
    """log Σ_k w_k N(z; m_k, diag exp(s_k)) for z (…, d) and K components (K, d) → (…).

    The quadratic form Σ_d (z_d − m_kd)²/σ²_kd is expanded into matrix products (memory (…, K), not (…, K, d)),
    in float64 when no gradient is taken (evaluation) and float32 otherwise, never under autocast."""
    dt = torch.float32 if torch.is_grad_enabled() else torch.float64
    with torch.autocast(z.device.type, enabled=False):
        zz, m, s, lw = z.to(dt), means.to(dt), logvars.to(dt), log_weights.to(dt)
        prec = torch.exp(-s)  # (K, d)
        quad = zz.pow(2) @ prec.T - 2 * (zz @ (m * prec).T) + (m.pow(2) * prec).sum(-1)  # (…, K)
        log_n = -0.5 * (quad.clamp(min=0) + s.sum(-1) + z.shape[-1] * LOG_2PI)
        return torch.logsumexp(lw + log_n, -1).to(torch.promote_types(z.dtype, torch.float32))


def mixture_sample(n: int, means: torch.Tensor, logvars: torch.Tensor, log_weights: torch.Tensor,
                   generator: torch.Generator | None, temperature: float) -> torch.Tensor:
    """z = m_k + temperature·σ_k·ε with k ~ Categorical(w) → (n, d) on the CPU."""
    m, s, lw = means.detach().cpu().float(), logvars.detach().cpu().float(), log_weights.detach().cpu().float()
    k = torch.multinomial(torch.softmax(lw, 0), n, replacement=True, generator=generator)
    return m[k] + temperature * torch.exp(0.5 * s[k]) * torch.randn(n, m.shape[1], generator=generator)


class Prior(nn.Module):
    """p(z): ``log_prob`` (…, d) → (…), ``sample`` (n) → (n, d); ``kl`` may return None (then Monte Carlo).

    A ``factorized`` prior (log p(z) = Σ_d log p(z_d)) also gives ``log_prob_dims``, so free bits can act per
    dimension on Monte-Carlo KL terms; others get free bits per layer.
    """

    factorized: bool = False

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

    def kl_dims(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor | None:
        """KL(q(z_d|x) ‖ p(z_d)) per dimension (N, d) for exploration: the closed form where there is one, else
        (mixtures) a fixed-seed Monte-Carlo estimate against p's marginal of each dimension; None if neither."""
        return self.kl(mu, logvar)

    def log_prob_dims(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z_d) per dimension (…, d), for ``factorized`` priors."""
        raise NotImplementedError(f"{type(self).__name__} does not factorise over dimensions")

    def bind(self, model: Any) -> None:
        """Called once by the VAE that owns this prior, after it is built (nothing to do by default)."""

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        """Refuse (one-line VaekitError) a ModelConfig this prior cannot serve."""
        if getattr(cfg, "prior_components", 0):
            raise VaekitError(f"prior_components applies to the mixture priors (mog, vampprior), not to prior "
                              f"{cfg.prior!r}")

    @classmethod
    def parameter_count(cls, cfg: Any) -> int:
        """Weights this prior holds for ModelConfig ``cfg`` (an upper estimate, from the sizes alone)."""
        return 0


@PRIORS.register("standard_normal")
class StandardNormal(Prior):
    """p(z) = N(0, I); KL(N(μ,σ²) ‖ N(0,1)) = ½(μ² + σ² − 1 − log σ²) per dimension."""

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)

    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        return temperature * torch.randn(n, self.latent_dim, generator=generator)

    factorized = True

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)

    def log_prob_dims(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (z.pow(2) + LOG_2PI)


class _Mixture(Prior):
    """A mixture prior with ``prior_components`` K (0 in the config: ``DEFAULT_COMPONENTS``)."""

    DEFAULT_COMPONENTS = 10

    @classmethod
    def components_of(cls, cfg: Any) -> int:
        return int(getattr(cfg, "prior_components", 0) or cls.DEFAULT_COMPONENTS)

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        pass

    def components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(means (K, d), log-variances (K, d), log-weights (K,))."""
        raise NotImplementedError

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return mixture_log_prob(z, *self.components())

    @torch.no_grad()
    def kl_dims(self, mu: torch.Tensor, logvar: torch.Tensor, samples: int = 32) -> torch.Tensor | None:
        """E_q[log q(z_d|x) − log Σ_k w_k N(z_d; m_kd, σ²_kd)] per dimension, ``samples`` fixed-seed draws."""
        means, logvars, lw = (t.float() for t in self.components())
        mu, logvar = mu.float(), logvar.float()
        eps = torch.randn((samples, *mu.shape), generator=torch.Generator().manual_seed(0)).to(mu.device)
        z = mu + torch.exp(0.5 * logvar) * eps  # (S, N, d)
        out = torch.empty_like(mu)
        for j in range(mu.shape[-1]):  # one dimension at a time: (S, N, K) in memory
            log_n = gaussian_log_prob_dims(z[..., j, None], means[:, j], logvars[:, j])
            log_p = torch.logsumexp(lw + log_n, -1)
            log_q = -0.5 * (eps[..., j].pow(2) + logvar[..., j] + LOG_2PI)
            out[..., j] = (log_q - log_p).mean(0)
        return out

    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        with torch.no_grad():
            return mixture_sample(n, *self.components(), generator, temperature)


@PRIORS.register("mog")
class MixtureOfGaussians(_Mixture):
    """p(z) = Σ_k π_k N(z; m_k, diag exp(s_k)), π = softmax(a): means, log-variances and weights all learned."""

    def __init__(self, latent_dim: int, n_components: int = 10) -> None:
        super().__init__(latent_dim)
        self.means = nn.Parameter(torch.randn(n_components, latent_dim))
        self.logvars = nn.Parameter(torch.zeros(n_components, latent_dim))
        self.logits = nn.Parameter(torch.zeros(n_components))

    @classmethod
    def from_config(cls, cfg: Any) -> Prior:
        return cls(cfg.latent_dim, cls.components_of(cfg))

    @classmethod
    def parameter_count(cls, cfg: Any) -> int:
        return cls.components_of(cfg) * (2 * cfg.latent_dim + 1)

    def components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.means, self.logvars.clamp(-12.0, 8.0), torch.log_softmax(self.logits, 0)


@PRIORS.register("vampprior")
class VampPrior(_Mixture):
    """p(z) = (1/K) Σ_k q(z | u_k): the encoder's Gaussian at K learned pseudo-inputs u_k (Tomczak & Welling 2018).

    For a hierarchical model q(z | u_k) is the top layer's; for an IAF posterior, its Gaussian summary
    (``model.encode``). In evaluation (no gradient) the K encoder outputs are cached until a weight changes.
    """

    DEFAULT_COMPONENTS = 500

    def __init__(self, latent_dim: int, input_shape: tuple[int, ...], n_components: int = 500) -> None:
        super().__init__(latent_dim)
        # Tomczak & Welling's initialisation: N(0.05, 0.01²) per pixel
        self.pseudo_inputs = nn.Parameter(0.05 + 0.01 * torch.randn(n_components, math.prod(input_shape)))
        self._encode: Any = None
        self._cache: dict[str, Any] = {}

    @classmethod
    def from_config(cls, cfg: Any) -> Prior:
        return cls(cfg.latent_dim, tuple(cfg.input_shape), cls.components_of(cfg))

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        if cfg.n_conditions:
            raise VaekitError("prior 'vampprior' cannot be combined with a conditional model (n_conditions > 0): "
                              "its pseudo-inputs carry no condition")

    @classmethod
    def parameter_count(cls, cfg: Any) -> int:
        return cls.components_of(cfg) * math.prod(cfg.input_shape)

    def train(self, mode: bool = True) -> VampPrior:
        """Switching mode drops the cached encodings: optimizer steps (fused Adam on CPU among them) need not bump
        the parameters' version counters, so the cache key alone could miss a training step."""
        self._cache = {}
        return super().train(mode)

    def bind(self, model: Any) -> None:
        object.__setattr__(self, "_owner", model)  # a plain reference, not a submodule (no second state-dict entry)
        self._encode = model.encode

    def components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self._encode is None:
            raise RuntimeError("VampPrior is not bound to a model (VAE.__init__ calls prior.bind(model))")
        k = len(self.pseudo_inputs)
        lw = torch.full((k,), -math.log(k), device=self.pseudo_inputs.device)
        if torch.is_grad_enabled() or self.training:
            mu, logvar = self._encode(self.pseudo_inputs)
            return mu, logvar, lw
        owner = self.__dict__["_owner"]
        key = tuple((id(p), p._version, p.device) for p in owner.parameters())
        if self._cache.get("key") != key:
            with torch.autocast(self.pseudo_inputs.device.type, enabled=False):
                mu, logvar = self._encode(self.pseudo_inputs)
            self._cache = {"key": key, "value": (mu.float(), logvar.float())}
        mu, logvar = self._cache["value"]
        return mu, logvar, lw
