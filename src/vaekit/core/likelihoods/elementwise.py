"""Per-value likelihoods for images and vectors: Bernoulli, Gaussian (fixed or learned σ), discretized logistic
(8-bit values), categorical (K levels)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vaekit.errors import DataError, VaekitError
from vaekit.core.likelihoods.base import LIKELIHOODS, LOG_2PI, Likelihood, _finite, _is_uint8_like, _pixels, _up


@LIKELIHOODS.register("bernoulli")
class Bernoulli(Likelihood):
    """log p(x|z) = Σ_d x_d·l_d − softplus(l_d), logits l = decoder(z). Data in [0, 1]."""

    name = "bernoulli"
    discrete_bits = 1.0
    supports_images = True
    coding = "bernoulli"
    coding_family = "bernoulli"

    def n_symbols(self) -> int:
        return 2

    def coding_params(self, params: np.ndarray) -> tuple[np.ndarray, ...]:
        """P(x_d = 1) = σ(l_d): the logits."""
        return (params[:, 0, :],)

    def symbol_probs(self, params: torch.Tensor, quantise: Any) -> np.ndarray:
        """P(x_d = 1) = σ(l_d)."""
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-quantise(params[0])))

    def log_prob_dims(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logits = _up(params[..., 0, :])
        return x * logits - F.softplus(logits)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(params[..., 0, :])

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        p = self.mean(params)
        return (torch.rand(p.shape, generator=generator, device=p.device) < p).float()

    def prepare(self, x: np.ndarray, source: str) -> torch.Tensor:
        _finite(x, source)
        if x.dtype == np.uint8 and x.size and x.max() > 1:
            x = x.astype(np.float32) / 255.0
        x = np.asarray(x, dtype=np.float32)
        if x.size and (x.min() < 0 or x.max() > 1):
            raise DataError(
                f"{source}: Bernoulli likelihood needs values in [0, 1] (or uint8 pixels), "
                f"got range [{x.min():.4g}, {x.max():.4g}]")
        return torch.from_numpy(np.ascontiguousarray(x))

    def to_output(self, x: torch.Tensor) -> np.ndarray:
        return x.detach().float().cpu().numpy()

    def to_uint8(self, x: torch.Tensor) -> np.ndarray:
        """p·255."""
        return _pixels(x * 255)

    def training_transform(self, x: torch.Tensor, raw_dtype: np.dtype, binarize: str,
                           seed: int) -> tuple[torch.Tensor, str]:
        """'static': x ~ Bernoulli(p) once from a seeded generator; 'dynamic': re-drawn every batch."""
        if binarize == "static":
            g = torch.Generator().manual_seed(seed)
            return (torch.rand(x.shape, generator=g) < x).float(), "none"
        if binarize == "dynamic":
            return x, "dynamic"
        if binarize != "none":
            raise DataError(f"binarize must be none, static or dynamic, got {binarize!r}")
        return x, "none"


@LIKELIHOODS.register("gaussian")
class Gaussian(Likelihood):
    """log p(x|z) = Σ_d log N(x_d; μ_d, σ²), fixed σ. uint8 pixels are dequantized to (x+u)/256."""

    name = "gaussian"
    supports_images = True

    def __init__(self, sigma: float = 0.1) -> None:
        self.sigma = float(sigma)

    @classmethod
    def from_config(cls, cfg: Any) -> Likelihood:
        return cls(cfg.gaussian_sigma)

    def _logvar(self, params: torch.Tensor) -> torch.Tensor | float:
        return 2 * math.log(self.sigma)

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mu = _up(params[..., 0, :])
        logvar = self._logvar(params)
        if isinstance(logvar, float):
            return -0.5 * (((x - mu) ** 2).sum(-1) / math.exp(logvar) + x.shape[-1] * (logvar + LOG_2PI))
        return -0.5 * (((x - mu) ** 2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)

    def log_prob_dims(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mu = _up(params[..., 0, :])
        logvar = self._logvar(params)
        lv = torch.as_tensor(logvar, dtype=mu.dtype)
        return -0.5 * (((x - mu) ** 2) * torch.exp(-lv) + lv + LOG_2PI)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return params[..., 0, :]

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        logvar = self._logvar(params)
        std = math.exp(0.5 * logvar) if isinstance(logvar, float) else torch.exp(0.5 * logvar)
        mu = params[..., 0, :]
        return mu + std * torch.randn(mu.shape, generator=generator, device=mu.device)

    def prepare(self, x: np.ndarray, source: str) -> torch.Tensor:
        _finite(x, source)
        if x.dtype == np.uint8:  # 8-bit pixels: bin centres (x + ½)/256; training adds U(−½, ½)/256
            return torch.from_numpy((x.astype(np.float32) + 0.5) / 256.0)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def training_transform(self, x: torch.Tensor, raw_dtype: np.dtype, binarize: str,
                           seed: int) -> tuple[torch.Tensor, str]:
        """8-bit pixels are dequantized in training: (x + u)/256, u ~ U(0, 1)."""
        x, _ = super().training_transform(x, raw_dtype, binarize, seed)
        return x, "dequantize" if raw_dtype == np.uint8 else "none"

    def to_uint8(self, x: torch.Tensor) -> np.ndarray:
        """Dequantised pixels back to 0..255: v·256 − ½."""
        return _pixels(x * 256 - 0.5)


@LIKELIHOODS.register("gaussian_learned")
class GaussianLearned(Gaussian):
    """log p(x|z) = Σ_d log N(x_d; μ_d, σ_d²), log σ_d² a decoder output clamped to [logvar_min, logvar_max]
    (−9, 5 by default)."""

    name = "gaussian_learned"
    n_params = 2
    supports_column_variance = True

    def __init__(self, logvar_min: float = -9.0, logvar_max: float = 5.0) -> None:
        super().__init__(1.0)
        self.logvar_min, self.logvar_max = float(logvar_min), float(logvar_max)

    @classmethod
    def from_config(cls, cfg: Any) -> Likelihood:
        return cls(cfg.obs_logvar_min, getattr(cfg, "obs_logvar_max", 5.0))

    def _logvar(self, params: torch.Tensor) -> torch.Tensor:
        return _up(params[..., 1, :]).clamp(self.logvar_min, self.logvar_max)

    def logvar_mask(self, width: int) -> torch.Tensor:
        mask = torch.zeros(2, width, dtype=torch.bool)
        mask[1] = True
        return mask


@LIKELIHOODS.register("logistic")
class DiscretizedLogistic(Likelihood):
    """p(x|z) = σ((x+½Δ−μ)/s) − σ((x−½Δ−μ)/s) on 256 bins in [−1, 1], edge bins open (PixelCNN++)."""

    name = "logistic"
    n_params = 2
    discrete_bits = 8.0
    coding = "categorical"
    coding_family = "logistic256"

    def n_symbols(self) -> int:
        return 256

    def coding_params(self, params: np.ndarray) -> tuple[np.ndarray, ...]:
        """(μ, max(log s, −7)) of each pixel's logistic, as ``log_prob_dims`` uses them."""
        return params[:, 0, :], np.maximum(params[:, 1, :], -7.0)

    def symbols_to_model(self, s: np.ndarray) -> np.ndarray:
        return s.astype(np.float64) / 127.5 - 1.0

    def symbol_probs(self, params: torch.Tensor, quantise: Any) -> np.ndarray:
        """P(x_d = s) = σ((b_{s+1} − μ)/s) − σ((b_s − μ)/s) over the 256 bins, log s floored at −7."""
        mu, log_s = quantise(params[0])[:, None], np.maximum(quantise(params[1]), -7.0)[:, None]
        inner = (np.arange(1, 256) / 127.5 - 1.0 - 1.0 / 255)[None, :]  # bin boundaries between symbols
        with np.errstate(over="ignore"):  # exp → inf gives the exact limit cdf = 0
            cdf = 1.0 / (1.0 + np.exp(-(inner - mu) / np.exp(log_s)))
        d = len(mu)
        cdf = np.concatenate([np.zeros((d, 1)), cdf, np.ones((d, 1))], axis=1)
        return np.maximum(np.diff(cdf, axis=1), 0.0)
    supports_images = True

    def log_prob_dims(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mu = _up(params[..., 0, :])
        log_s = _up(params[..., 1, :]).clamp(min=-7.0)
        inv_s = torch.exp(-log_s)
        centered = x - mu
        plus = inv_s * (centered + 1.0 / 255)
        minus = inv_s * (centered - 1.0 / 255)
        cdf_delta = torch.sigmoid(plus) - torch.sigmoid(minus)
        log_cdf_plus = plus - F.softplus(plus)  # log σ(plus), for x = 0 (left edge)
        log_one_minus_cdf_min = -F.softplus(minus)  # log(1 − σ(minus)), for x = 255
        mid = inv_s * centered
        log_pdf_mid = mid - log_s - 2.0 * F.softplus(mid) + math.log(2.0 / 255)
        inner = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid)
        return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, inner))

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return params[..., 0, :].clamp(-1, 1)

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        mu = params[..., 0, :]
        u = torch.rand(mu.shape, generator=generator, device=mu.device).clamp(1e-5, 1 - 1e-5)
        x = mu + torch.exp(params[..., 1, :]) * (torch.log(u) - torch.log1p(-u))
        return torch.round((x.clamp(-1, 1) + 1) * 127.5) / 127.5 - 1

    def prepare(self, x: np.ndarray, source: str) -> torch.Tensor:
        _finite(x, source)
        if not _is_uint8_like(x):
            raise DataError(f"{source}: the discretized logistic likelihood needs 8-bit integer pixels 0..255, "
                            f"got dtype {x.dtype}")
        return torch.from_numpy(x.astype(np.float32) / 127.5 - 1.0)

    def to_output(self, x: torch.Tensor) -> np.ndarray:
        return np.clip(np.round((x.detach().float().cpu().numpy() + 1) * 127.5), 0, 255).astype(np.uint8)

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """[−1, 1] → [0, 1]."""
        return ((x.float() + 1) / 2).clamp(0, 1)

    def to_uint8(self, x: torch.Tensor) -> np.ndarray:
        """[−1, 1] → 0..255: (v + 1)·127.5."""
        return _pixels((x + 1) * 127.5)


@LIKELIHOODS.register("categorical")
class Categorical(Likelihood):
    """log p(x|z) = Σ_d log softmax(l_d)[x_d], K categories per dimension; data are integers 0..K−1."""

    name = "categorical"
    coding = "categorical"

    def __init__(self, n_categories: int) -> None:
        self.n_params = int(n_categories)
        self.discrete_bits = math.log2(self.n_params)

    @classmethod
    def from_config(cls, cfg: Any) -> Likelihood:
        return cls(cfg.n_categories)

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        super().check_config(cfg)
        if cfg.n_categories < 2:
            raise VaekitError("likelihood 'categorical' needs n_categories >= 2")

    def log_prob_dims(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(_up(params), dim=-2)
        idx = x.long().unsqueeze(-2).expand(*logp.shape[:-2], 1, logp.shape[-1])
        return logp.gather(-2, idx).squeeze(-2)  # x (N, D) broadcasts over leading sample dims

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return params.argmax(-2).float()

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        probs = torch.softmax(params.float(), dim=-2).movedim(-2, -1)
        flat = probs.reshape(-1, probs.shape[-1])
        return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1]).float()

    def prepare(self, x: np.ndarray, source: str) -> torch.Tensor:
        _finite(x, source)
        if x.size and (np.any(x != np.round(x)) or x.min() < 0 or x.max() >= self.n_params):
            raise DataError(f"{source}: categorical likelihood needs integers in 0..{self.n_params - 1}")
        return torch.from_numpy(np.asarray(x, dtype=np.float32))

    def n_symbols(self) -> int:
        return int(self.n_params)

    coding_family = "softmax"

    def coding_params(self, params: np.ndarray) -> tuple[np.ndarray, ...]:
        """P(x_d = k) = softmax(l_d)_k: logits (N, D, K)."""
        return (np.swapaxes(params, 1, 2),)

    def symbol_probs(self, params: torch.Tensor, quantise: Any) -> np.ndarray:
        """P(x_d = s) = softmax(l_d)_s."""
        logits = quantise(params.T)  # (D, K)
        p = np.exp(logits - logits.max(1, keepdims=True))
        return p / p.sum(1, keepdims=True)
