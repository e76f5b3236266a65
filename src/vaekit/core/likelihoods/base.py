"""The likelihood contract (:class:`Likelihood`), its registry ``LIKELIHOODS`` and the helpers its families share."""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

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


def make_likelihood(name: str, *, sigma: float = 0.1, n_categories: int = 0, logvar_min: float = -9.0,
                    logvar_max: float = 5.0, column_kinds: tuple[str, ...] = (),
                    column_sizes: tuple[int, ...] = ()) -> Likelihood:
    """The likelihood registered as ``name``, its settings given as keywords (for callers without a ModelConfig)."""
    settings = SimpleNamespace(gaussian_sigma=sigma, n_categories=n_categories, obs_logvar_min=logvar_min,
                               obs_logvar_max=logvar_max,
                               column_kinds=tuple(column_kinds), column_sizes=tuple(column_sizes))
    return LIKELIHOODS.get(name).from_config(settings)
