"""Rate–distortion VAE for lossy image coding (Ballé et al. 2017, "End-to-end optimized image compression").

``g_a`` (analysis) maps an image x ∈ [0,1]^{C×H×W} to latents y ∈ R^{M×H/s×W/s}, s = 2^n_down; ``g_s``
(synthesis) maps quantized latents ŷ back to x̂. Training replaces rounding by additive uniform noise,
ỹ = y + u, u ~ U(−½, ½); evaluation and coding use ŷ = round(y). The rate is measured under a learned
*factorized* density (one univariate non-parametric density per channel), p(ŷ) = ∏ (F_c(ŷ+½) − F_c(ŷ−½)).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.errors import CheckpointError

LIKELIHOOD_BOUND = 1e-9
MAX_FILTERS = 1024  # N and M of a codec config


@dataclass(frozen=True)
class RDConfig:
    """Architecture of one codec: image channels, N filters, M latent channels, n_down stride-2 stages."""

    channels: int = 3
    N: int = 64
    M: int = 96
    n_down: int = 4
    kernel: int = 5
    nonlinearity: str = "gdn"

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise CheckpointError(f"codec config: channels must be 1 or 3, got {self.channels}")
        if not (1 <= self.n_down <= 6) or not 1 <= self.N <= MAX_FILTERS or not 1 <= self.M <= MAX_FILTERS \
                or not 1 <= self.kernel <= 15 or self.kernel % 2 == 0:
            raise CheckpointError(f"codec config: invalid sizes N={self.N} M={self.M} n_down={self.n_down} "
                                  f"kernel={self.kernel}")
        if self.nonlinearity not in ("gdn", "relu"):
            raise CheckpointError(f"codec config: nonlinearity must be gdn or relu, got {self.nonlinearity!r}")

    @property
    def parameter_estimate(self) -> int:
        """Values one quality level holds (convolutions, GDNs, entropy model, coding tables), an upper estimate
        from the sizes alone (checked before a codec folder's levels are built)."""
        wide = max(self.N, self.M, self.channels)
        convs = 2 * self.n_down * (self.kernel ** 2 * wide * wide + wide)
        return convs + 2 * self.n_down * (self.N ** 2 + self.N) + self.M * (64 + 2 * 512 + 8)

    @property
    def stride(self) -> int:
        """Total down-sampling factor s = 2^n_down."""
        return 2 ** self.n_down

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RDConfig":
        try:
            bad = [k for k, v in d.items() if k != "nonlinearity" and (isinstance(v, bool) or not isinstance(v, int))]
            if bad:
                raise CheckpointError(f"codec config: {bad[0]} must be an integer")
            return cls(**{k: (str(v) if k == "nonlinearity" else int(v)) for k, v in d.items()})
        except (TypeError, ValueError) as e:
            if isinstance(e, CheckpointError):
                raise
            raise CheckpointError(f"codec config: {e}") from None


class GDN(nn.Module):
    """Generalized divisive normalization: y_i = x_i / sqrt(β_i + Σ_j γ_ij x_j²) (inverse: multiply)."""

    def __init__(self, ch: int, inverse: bool = False) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta_sqrt = nn.Parameter(torch.ones(ch))
        self.gamma_sqrt = nn.Parameter(math.sqrt(0.1) * torch.eye(ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """β = β̃² + 1e-6, γ = γ̃² (non-negative by construction)."""
        beta = self.beta_sqrt ** 2 + 1e-6
        gamma = (self.gamma_sqrt ** 2)[:, :, None, None]
        norm = F.conv2d(x * x, gamma, beta)
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)


def _act(cfg: RDConfig, ch: int, inverse: bool) -> nn.Module:
    return GDN(ch, inverse) if cfg.nonlinearity == "gdn" else nn.LeakyReLU(0.1)


def _conv(cin: int, cout: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=2, padding=k // 2)


def _deconv(cin: int, cout: int, k: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, k, stride=2, padding=k // 2, output_padding=1)


class FactorizedDensity(nn.Module):
    """Per-channel univariate density (Ballé et al. 2018, App. 6.1): F_c = σ(f_K ∘ … ∘ f_1), each f monotone.

    f_k(x) = softplus(H_k) x + b_k (+ tanh(a_k) ⊙ tanh(·) between layers), so F_c is a valid CDF for every
    parameter value and the likelihood of an integer is F_c(n + ½) − F_c(n − ½).
    """

    def __init__(self, ch: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0) -> None:
        super().__init__()
        dims = (1,) + tuple(filters) + (1,)
        scale = init_scale ** (1.0 / (len(filters) + 1))
        self.n_layers = len(filters) + 1
        for i in range(self.n_layers):
            init = math.log(math.expm1(1.0 / scale / dims[i + 1]))
            self.register_parameter(f"matrix{i}", nn.Parameter(torch.full((ch, dims[i + 1], dims[i]), init)))
            self.register_parameter(f"bias{i}", nn.Parameter(torch.rand(ch, dims[i + 1], 1) - 0.5))
            if i < len(filters):
                self.register_parameter(f"factor{i}", nn.Parameter(torch.zeros(ch, dims[i + 1], 1)))

    def logits_cdf(self, v: torch.Tensor) -> torch.Tensor:
        """Logit of F_c at points ``v`` of shape (C, 1, n) → (C, 1, n)."""
        x = v
        for i in range(self.n_layers):
            x = torch.matmul(F.softplus(getattr(self, f"matrix{i}")), x) + getattr(self, f"bias{i}")
            if i < self.n_layers - 1:
                x = x + torch.tanh(getattr(self, f"factor{i}")) * torch.tanh(x)
        return x

    def likelihood(self, y: torch.Tensor) -> torch.Tensor:
        """p(ŷ) = |σ(s·u) − σ(s·l)|, l,u = logits at ŷ∓½, s = −sign(l+u) (numerically stable tail)."""
        b, c, h, w = y.shape
        v = y.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower, upper = self.logits_cdf(v - 0.5), self.logits_cdf(v + 0.5)
        sign = -torch.sign(lower + upper).detach()
        lik = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        return lik.clamp_min(LIKELIHOOD_BOUND).reshape(c, b, h, w).permute(1, 0, 2, 3)

    @torch.no_grad()
    def integer_pmf(self, lo: int, hi: int) -> torch.Tensor:
        """P_c(n) = F_c(n+½) − F_c(n−½) for n = lo..hi in float64, shape (C, hi−lo+1)."""
        n = torch.arange(lo, hi + 1, dtype=torch.float64)
        c = next(self.parameters()).shape[0]
        v = n.to(torch.float32).expand(c, 1, -1)
        upper = torch.sigmoid(self.logits_cdf(v + 0.5).double())
        lower = torch.sigmoid(self.logits_cdf(v - 0.5).double())
        return (upper - lower).clamp_min(0.0)[:, 0, :]


class RDNet(nn.Module):
    """One quality level: g_a, g_s and the factorized entropy model of y (integer coding tables as buffers)."""

    def __init__(self, cfg: RDConfig) -> None:
        super().__init__()
        self.cfg = cfg
        N, M, k = cfg.N, cfg.M, cfg.kernel
        enc: list[nn.Module] = []
        dec: list[nn.Module] = []
        for i in range(cfg.n_down):
            last = i == cfg.n_down - 1
            enc.append(_conv(cfg.channels if i == 0 else N, M if last else N, k))
            if not last:
                enc.append(_act(cfg, N, False))
            dec.append(_deconv(M if i == 0 else N, cfg.channels if last else N, k))
            if not last:
                dec.append(_act(cfg, N, True))
        self.g_a = nn.Sequential(*enc)
        self.g_s = nn.Sequential(*dec)
        self.entropy = FactorizedDensity(M)
        # integer coding tables (filled by vaekit.jobs.compress.entropy.build_tables); empty until then
        self.register_buffer("table_freq", torch.zeros(M, 0, dtype=torch.int32))
        self.register_buffer("table_lo", torch.zeros(M, dtype=torch.int32))
        self.register_buffer("table_len", torch.zeros(M, dtype=torch.int32))

    def quantize(self, y: torch.Tensor) -> torch.Tensor:
        """ỹ = y + U(−½, ½) in training, ŷ = round(y) otherwise."""
        if self.training:
            return y + torch.empty_like(y).uniform_(-0.5, 0.5)
        return torch.round(y)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x ∈ [0,1] (B,C,H,W), H,W multiples of the stride → {"x_hat", "likelihoods", "y_hat"}."""
        y = self.g_a(x)
        y_hat = self.quantize(y)
        return {"x_hat": self.g_s(y_hat), "likelihoods": self.entropy.likelihood(y_hat), "y_hat": y_hat}

    def resize_tables(self, K: int) -> None:
        """Give ``table_freq`` K columns so a stored state dict of that shape can be loaded."""
        self.table_freq = torch.zeros(self.cfg.M, K, dtype=torch.int32)


class RateDistortionLoss(nn.Module):
    """L = D + λ·R with D = MSE on the 0..255 scale (255²·mean (x̂−x)²) and R = bits per pixel."""

    def __init__(self, lmbda: float) -> None:
        super().__init__()
        if not lmbda > 0:
            raise ValueError(f"lambda must be > 0, got {lmbda}")
        self.lmbda = float(lmbda)

    def forward(self, out: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns {"loss", "mse" (0..255 scale), "bpp"}; bpp = −Σ log₂ p(ỹ) / (B·H·W)."""
        b, _, h, w = x.shape
        bpp = -torch.log2(out["likelihoods"]).sum() / (b * h * w)
        mse = F.mse_loss(out["x_hat"], x) * 255.0 ** 2
        return {"loss": mse + self.lmbda * bpp, "mse": mse, "bpp": bpp}
