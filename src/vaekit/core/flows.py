"""Posterior families q(z|x), registered in ``POSTERIORS`` under the config's ``posterior`` name.

``gaussian``: q(z|x) = N(μ(x), diag σ²(x)) — the VAE's own reparameterised draw, nothing to build.
``iaf``: inverse autoregressive flow (Kingma et al. 2016): T steps on top of the Gaussian draw z⁰,
    [m, s] = MADE_t(z^{t−1}, h),  σ = sigmoid(s),  z^t = σ ⊙ z^{t−1} + (1 − σ) ⊙ m,  log q(z^T|x) = log q(z⁰|x) − Σ_t Σ_d log σ_td,
with the dimension order reversed between steps. The flow also carries the per-dimension "effective Gaussian"
(μ^t = σ ⊙ μ^{t−1} + (1 − σ) ⊙ m, log σ²^t = log σ²^{t−1} + 2 log σ), for which
log N(z^T; μ^T, σ²^T) = log q(z^T|x) exactly (each step is affine in z_d given z_<d).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.errors import VaekitError
from vaekit.registry import Registry

POSTERIORS: Registry[type[PosteriorFamily]] = Registry("posterior")

FORGET_BIAS = 2.0  # initial s: σ = sigmoid(2) ≈ 0.88, so every step starts close to the identity


class PosteriorFamily:
    """Builds the module (or None) that turns the Gaussian draw into a draw of q(z|x)."""

    @classmethod
    def build(cls, cfg: Any, context_dim: int) -> nn.Module | None:
        return None

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        """Refuse (one-line VaekitError) a ModelConfig this posterior cannot serve."""

    @classmethod
    def parameter_count(cls, cfg: Any, context_dim: int) -> int:
        return 0


@POSTERIORS.register("gaussian")
class GaussianPosterior(PosteriorFamily):
    """q(z|x) = N(μ(x), diag σ²(x)): the draw z = μ + σ·ε is used as it is."""


class MaskedLinear(nn.Linear):
    """y = (W ⊙ M) x + b with a fixed 0/1 mask M (MADE, Germain et al. 2015)."""

    def __init__(self, n_in: int, n_out: int, mask: torch.Tensor) -> None:
        super().__init__(n_in, n_out)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """[m, s](z, h): output d depends on z_<d and h only (degrees 1..d in, 1..d−1 hidden, strict output mask)."""

    def __init__(self, d: int, hidden: int, context_dim: int) -> None:
        super().__init__()
        deg_in = torch.arange(1, d + 1)
        deg_h = torch.arange(hidden) % max(1, d - 1) + 1
        self.inp = MaskedLinear(d, hidden, (deg_h[:, None] >= deg_in[None, :]).float())
        self.ctx = nn.Linear(context_dim, hidden)
        self.mid = MaskedLinear(hidden, hidden, (deg_h[:, None] >= deg_h[None, :]).float())
        out_mask = (deg_in[:, None] > deg_h[None, :]).float()
        self.out = MaskedLinear(hidden, 2 * d, torch.cat([out_mask, out_mask]))
        self.ctx_out = nn.Linear(context_dim, 2 * d)  # h reaches every output (z_1's too: it has no z_<1)
        with torch.no_grad():
            for lin in (self.out, self.ctx_out):
                lin.weight.mul_(0.01)
                lin.bias.zero_()
            self.out.bias[d:] = FORGET_BIAS

    def forward(self, z: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = F.elu(self.inp(z) + self.ctx(h))
        a = F.elu(self.mid(a))
        m, s = (self.out(a) + self.ctx_out(h)).chunk(2, -1)
        return m, s


class IAF(nn.Module):
    """T inverse-autoregressive steps z^t = σ ⊙ z^{t−1} + (1 − σ) ⊙ m, conditioned on the encoder features h."""

    def __init__(self, d: int, steps: int, hidden: int, context_dim: int) -> None:
        super().__init__()
        self.steps = nn.ModuleList(MADE(d, hidden, context_dim) for _ in range(steps))

    def forward(self, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z^T, effective μ^T, effective log σ²^T, Σ_t Σ_d log σ_td); inputs broadcast over leading sample dims."""
        mu, logvar = mu.expand_as(z), logvar.expand_as(z)
        h = h.expand(*z.shape[:-1], h.shape[-1])
        log_det = torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)
        for i, made in enumerate(self.steps):
            if i:  # reverse the order, so that every dimension is conditioned on every other one in turn
                z, mu, logvar = z.flip(-1), mu.flip(-1), logvar.flip(-1)
            m, s = made(z, h)
            gate, log_gate = torch.sigmoid(s), F.logsigmoid(s)
            z = gate * z + (1 - gate) * m
            mu = gate * mu + (1 - gate) * m
            logvar = logvar + 2 * log_gate
            log_det = log_det + log_gate.sum(-1)
        return z, mu, logvar, log_det


@POSTERIORS.register("iaf")
class IAFPosterior(PosteriorFamily):
    """Gaussian draw followed by ``flow_steps`` IAF steps of MADE width ``flow_hidden`` (0: 4·latent_dim)."""

    @staticmethod
    def width(cfg: Any) -> int:
        return int(cfg.flow_hidden or 4 * cfg.latent_dim)

    @classmethod
    def build(cls, cfg: Any, context_dim: int) -> nn.Module | None:
        return IAF(cfg.latent_dim, cfg.flow_steps, cls.width(cfg), context_dim)

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        if cfg.stochastic_layers > 1:
            raise VaekitError(f"posterior 'iaf' applies to one stochastic layer; it cannot be combined with "
                              f"stochastic_layers={cfg.stochastic_layers}")
        if cfg.latent_dim < 2:
            raise VaekitError("posterior 'iaf' needs latent_dim >= 2 (an autoregressive flow over one dimension "
                              "is a plain Gaussian)")
        if cfg.flow_steps < 1:
            raise VaekitError(f"posterior 'iaf' needs flow_steps >= 1, got {cfg.flow_steps}")

    @classmethod
    def parameter_count(cls, cfg: Any, context_dim: int) -> int:
        d, hid = cfg.latent_dim, cls.width(cfg)
        return cfg.flow_steps * ((d + 1) * hid + (context_dim + 1) * (hid + 2 * d) + (hid + 1) * (hid + 2 * d))
