"""Decoder likelihoods p(x|z): each maps decoder outputs to a per-example log-probability.

Data layout: x is (N, D) flattened; decoder parameters are (N, P, D) with P = n_params.
Each likelihood declares the data it accepts (``validate``) and the values it trains on (``prepare``).
Likelihoods register under their config name in ``LIKELIHOODS``; ``from_config`` builds one from a ModelConfig and
``check_config`` refuses configs it cannot serve, so no code outside a likelihood switches on its name.
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vaekit.data.tabular import KINDS as COLUMN_KINDS
from vaekit.errors import DataError, VaekitError
from vaekit.registry import Registry

LOG_2PI = math.log(2 * math.pi)

LIKELIHOODS: Registry[type[Likelihood]] = Registry("likelihood")


class Likelihood:
    """log p(x|z) = Σ_d log p(x_d | θ_d(z)); subclasses set ``n_params`` and the three methods below."""

    name: str = ""
    n_params: int = 1
    out_dim: int | None = None  # decoder width D when it differs from the data width (mixed tables)
    discrete_bits: float | None = None  # bits of one dimension's alphabet, for bits/dim of discrete data
    supports_column_variance: bool = False  # has log-variance outputs that obs_variance="column" can make free
    supports_images: bool = False  # models 8-bit pixels: ``to_uint8`` maps model space back to them
    coding: str | None = None  # lossless coding model of one symbol: "bernoulli" | "categorical" (None: continuous)
    coding_family: str | None = None  # fixed-point family of bits-back coding: "bernoulli" | "softmax" | "logistic256"

    def n_symbols(self) -> int:
        """Alphabet size of one dimension for lossless coding (symbols 0..n_symbols−1)."""
        raise VaekitError(f"likelihood {self.name!r} is continuous: it has no symbol alphabet to code")

    def symbols_to_model(self, s: np.ndarray) -> np.ndarray:
        """Integer symbols → the model's input space (float64), as ``prepare`` maps them."""
        return s.astype(np.float64)

    def symbol_probs(self, params: torch.Tensor, quantise: Any) -> np.ndarray:
        """Coding distribution of each dimension from decoder parameters (P, D), every parameter first passed
        through ``quantise`` (so encoder and decoder build identical tables): P(x_d = 1) (D,) for "bernoulli",
        P(x_d = s) (D, n_symbols) for "categorical"."""
        raise VaekitError(f"likelihood {self.name!r} is continuous: bits-back coding needs a discrete likelihood")

    def coding_params(self, params: np.ndarray) -> tuple[np.ndarray, ...]:
        """Decoder parameters (N, P, D) → the real inputs of ``coding_family``: logits l (N, D) for "bernoulli",
        logits (N, D, K) for "softmax", (μ, log s) (N, D) each for "logistic256" (the integer tables are built from
        these by :mod:`vaekit.jobs.compress.fixedpoint`)."""
        raise VaekitError(f"likelihood {self.name!r} is continuous: bits-back coding needs a discrete likelihood")

    @classmethod
    def from_config(cls, cfg: Any) -> Likelihood:
        """The likelihood a ModelConfig ``cfg`` asks for (subclasses read the config fields they take)."""
        return cls()

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        """Refuse (one-line VaekitError) a ModelConfig ``cfg`` this likelihood cannot serve."""
        if cfg.obs_variance == "column" and not cls.supports_column_variance:
            able = " or ".join(repr(n) for n in LIKELIHOODS.names() if LIKELIHOODS.get(n).supports_column_variance)
            raise VaekitError(f"obs_variance 'column' needs likelihood {able}, got {cfg.likelihood!r}")

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Σ_d log p(x_d | params_d) → shape params.shape[:-2] (broadcast over leading sample dims)."""
        return self.log_prob_dims(params, x).sum(-1)

    def log_prob_dims(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x_d | params_d) per data dimension (per column for ``mixed``) → params.shape[:-2] + (D,)."""
        raise NotImplementedError

    def sq_error_dims(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(x_d − E[x_d|z])² per data dimension, the reconstruction error behind ``recon_error`` scores."""
        return (x - _up(self.mean(params))) ** 2

    def logvar_mask(self, width: int) -> torch.Tensor | None:
        """Boolean (P, width) marking the decoder outputs that are log-variances (None: the likelihood has none)."""
        return None

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """E[x|z] in data space (what the user sees)."""
        raise NotImplementedError

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def prepare(self, x: np.ndarray, source: str) -> torch.Tensor:
        """Validate raw data and map it to the model's data space (float32 tensor, N×D)."""
        raise NotImplementedError

    def to_output(self, x: torch.Tensor) -> np.ndarray:
        """Map model-space values back to the user's data space (e.g. uint8 pixels)."""
        return x.detach().cpu().numpy()

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Model-space values → [0, 1] for pictures."""
        return x.float().clamp(0, 1)

    def to_uint8(self, x: torch.Tensor) -> np.ndarray:
        """Model-space values → 8-bit pixels (only where ``supports_images``)."""
        raise VaekitError(f"the {self.name!r} likelihood does not model 8-bit pixels")

    def training_transform(self, x: torch.Tensor, raw_dtype: np.dtype, binarize: str,
                           seed: int) -> tuple[torch.Tensor, str]:
        """(prepared data, per-batch transform kind) for training; only Bernoulli data can be binarized."""
        if binarize != "none":
            raise DataError(f"binarize={binarize!r} applies only to the Bernoulli likelihood, not {self.name!r}")
        return x, "none"


def _up(t: torch.Tensor) -> torch.Tensor:
    """Half precision (autocast outputs) → float32; float32/float64 stay as they are."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def _finite(x: np.ndarray, source: str) -> None:
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise DataError(f"{source}: {bad} value(s) are NaN or inf; this likelihood allows none")


def _is_uint8_like(x: np.ndarray) -> bool:
    if x.dtype == np.uint8:
        return True
    return bool(np.issubdtype(x.dtype, np.integer) and x.size and x.min() >= 0 and x.max() <= 255)


def _pixels(v: torch.Tensor) -> np.ndarray:
    return np.clip(np.round(v.detach().double().cpu().numpy()), 0, 255).astype(np.uint8)


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


@LIKELIHOODS.register("mixed")
class MixedTabular(Likelihood):
    """log p(x|z) = Σ_j m_j · log p_j(x_j | θ_j(z)), per column j: N(μ, σ²) (learned σ) / Bernoulli / categorical.

    Data layout (see :mod:`vaekit.data.tabular`): per column its value (continuous: transformed value; binary: 0/1;
    categorical: one-hot over K), then one observed-mask bit m_j per column. Decoder layout: per column (μ, log σ²),
    one logit, or K logits; log σ² is clamped to [logvar_min, logvar_max]. ``log_prob_dims`` returns the per-column
    terms (0 where m_j = 0).
    """

    name = "mixed"
    supports_column_variance = True

    def __init__(self, column_kinds: tuple[str, ...], column_sizes: tuple[int, ...], logvar_min: float = -9.0,
                 logvar_max: float = 5.0) -> None:
        self.kinds, self.sizes, self.logvar_min = tuple(column_kinds), tuple(column_sizes), float(logvar_min)
        self.logvar_max = float(logvar_max)
        self.n_cols = len(self.kinds)
        cont_in, cont_out, bin_in, bin_out, self.cats = [], [], [], [], []
        order_cont, order_bin, order_cat = [], [], []
        i = o = 0
        for j, (kind, size) in enumerate(zip(self.kinds, self.sizes)):
            if kind == "continuous":
                cont_in.append(i), cont_out.append(o), order_cont.append(j)
                i, o = i + 1, o + 2
            elif kind == "binary":
                bin_in.append(i), bin_out.append(o), order_bin.append(j)
                i, o = i + 1, o + 1
            else:
                self.cats.append((i, o, size))
                order_cat.append(j)
                i, o = i + size, o + size
        self.in_dim, self.out_dim = i, o
        self.cont_in, self.cont_out = torch.tensor(cont_in, dtype=torch.long), torch.tensor(cont_out, dtype=torch.long)
        self.bin_in, self.bin_out = torch.tensor(bin_in, dtype=torch.long), torch.tensor(bin_out, dtype=torch.long)
        self.inverse = torch.argsort(torch.tensor(order_cont + order_bin + order_cat, dtype=torch.long))

    @classmethod
    def from_config(cls, cfg: Any) -> Likelihood:
        return cls(cfg.column_kinds, cfg.column_sizes, cfg.obs_logvar_min, getattr(cfg, "obs_logvar_max", 5.0))

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        """Mixed tables: one input per continuous/binary column, K per categorical one, plus one mask bit per column."""
        super().check_config(cfg)
        kinds, sizes = cfg.column_kinds, cfg.column_sizes
        if not kinds or len(kinds) != len(sizes):
            raise VaekitError("likelihood 'mixed' needs column_kinds and column_sizes of equal, non-zero length")
        bad = sorted({k for k in kinds if k not in COLUMN_KINDS})
        if bad:
            raise VaekitError(f"column kind(s) {bad} not in {list(COLUMN_KINDS)}")
        if any(n < 2 for k, n in zip(kinds, sizes) if k == "categorical"):
            raise VaekitError("likelihood 'mixed': every categorical column needs column_sizes >= 2")
        if cfg.arch != "mlp":
            raise VaekitError("likelihood 'mixed' needs arch 'mlp'")
        expected = sum(n if k == "categorical" else 1 for k, n in zip(kinds, sizes)) + len(kinds)
        if tuple(cfg.input_shape) != (expected,):
            raise VaekitError(f"likelihood 'mixed': input_shape must be ({expected},) for these columns "
                              f"(values + one mask bit per column), got {tuple(cfg.input_shape)}")

    def _per_kind(self, params: torch.Tensor, x: torch.Tensor, fc: Any, fb: Any, fk: Any) -> torch.Tensor:
        """Apply per-kind column functions and put the columns back in schema order, masked → (…, N, C)."""
        p = _up(params[..., 0, :])
        parts = []
        if len(self.cont_in):
            mu, lv = p[..., self.cont_out], p[..., self.cont_out + 1].clamp(self.logvar_min, self.logvar_max)
            parts.append(fc(x[:, self.cont_in], mu, lv))
        if len(self.bin_in):
            parts.append(fb(x[:, self.bin_in], p[..., self.bin_out]))
        for i, o, k in self.cats:
            parts.append(fk(x[:, i:i + k], p[..., o:o + k]).unsqueeze(-1))
        cols = torch.cat(parts, -1)[..., self.inverse]
        return cols * x[:, self.in_dim:]

    def log_prob_dims(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self._per_kind(
            params, x, lambda v, mu, lv: -0.5 * ((v - mu) ** 2 * torch.exp(-lv) + lv + LOG_2PI),
            lambda v, logit: v * logit - F.softplus(logit),
            lambda onehot, logits: (onehot * torch.log_softmax(logits, -1)).sum(-1))

    log_prob_columns = log_prob_dims

    def logvar_mask(self, width: int) -> torch.Tensor:
        mask = torch.zeros(1, self.out_dim, dtype=torch.bool)
        mask[0, self.cont_out + 1] = True
        return mask

    def sq_error_dims(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per column: (x − μ)², (x − p)², or the Brier score Σ_k (onehot_k − p_k)²; 0 where unobserved."""
        return self._per_kind(params, x, lambda v, mu, lv: (v - mu) ** 2,
                              lambda v, logit: (v - torch.sigmoid(logit)) ** 2,
                              lambda onehot, logits: ((onehot - torch.softmax(logits, -1)) ** 2).sum(-1))

    def _values(self, params: torch.Tensor, draw: bool, generator: torch.Generator | None) -> torch.Tensor:
        p = _up(params[..., 0, :])
        out = p.new_zeros(*p.shape[:-1], self.in_dim + self.n_cols)
        out[..., self.in_dim:] = 1.0
        if len(self.cont_in):
            mu = p[..., self.cont_out]
            if draw:
                sd = torch.exp(0.5 * p[..., self.cont_out + 1].clamp(self.logvar_min, self.logvar_max))
                mu = mu + sd * torch.randn(mu.shape, generator=generator)
            out[..., self.cont_in] = mu
        if len(self.bin_in):
            prob = torch.sigmoid(p[..., self.bin_out])
            out[..., self.bin_in] = (torch.rand(prob.shape, generator=generator) < prob).float() if draw else prob
        for i, o, k in self.cats:
            prob = torch.softmax(p[..., o:o + k], -1)
            if draw:
                idx = torch.multinomial(prob.reshape(-1, k), 1, generator=generator).reshape(prob.shape[:-1])
                prob = F.one_hot(idx, k).float()
            out[..., i:i + k] = prob
        return out

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """E[x|z] in the encoded layout: means, probabilities, category probabilities; mask bits 1."""
        return self._values(params, False, None)

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self._values(params, True, generator)

    def prepare(self, x: np.ndarray, source: str) -> torch.Tensor:
        _finite(x, source)
        if x.ndim != 2 or x.shape[1] != self.in_dim + self.n_cols:
            raise DataError(f"{source}: the mixed likelihood needs encoded rows of {self.in_dim + self.n_cols} values "
                            f"(use vaekit.data.tabular.TabularSchema.encode), got shape {x.shape}")
        m = x[:, self.in_dim:]
        if x.size and not np.isin(m, (0, 1)).all():
            raise DataError(f"{source}: the last {self.n_cols} values of each row are mask bits and must be 0 or 1")
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def make_likelihood(name: str, *, sigma: float = 0.1, n_categories: int = 0, logvar_min: float = -9.0,
                    logvar_max: float = 5.0, column_kinds: tuple[str, ...] = (),
                    column_sizes: tuple[int, ...] = ()) -> Likelihood:
    """The likelihood registered as ``name``, its settings given as keywords (for callers without a ModelConfig)."""
    settings = SimpleNamespace(gaussian_sigma=sigma, n_categories=n_categories, obs_logvar_min=logvar_min,
                               obs_logvar_max=logvar_max,
                               column_kinds=tuple(column_kinds), column_sizes=tuple(column_sizes))
    return LIKELIHOODS.get(name).from_config(settings)
