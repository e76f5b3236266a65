"""Preprocessing declared per likelihood, validated once (``prepare``) plus a per-batch transform for training.

* Bernoulli: values in [0, 1]; ``binarize='static'`` samples x ~ Bernoulli(p) once (seeded),
  ``'dynamic'`` re-samples every batch.
* Gaussian on 8-bit pixels: bin centres (x + ½)/256 for evaluation, uniform dequantization (x + u)/256 in training.
* Discretized logistic: 8-bit pixels mapped to [−1, 1]; categorical: integers 0..K−1.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import DataError
from ..likelihoods import Likelihood


class BatchTransform:
    """Training-time randomness applied per batch: dynamic binarization or uniform dequantization."""

    def __init__(self, kind: str = "none") -> None:
        self.kind = kind

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if self.kind == "dynamic":
            return (torch.rand(x.shape, generator=generator) < x).to(x.dtype)
        if self.kind == "dequantize":
            return x + (torch.rand(x.shape, generator=generator) - 0.5) / 256.0
        return x


def prepare(x: np.ndarray, likelihood: Likelihood, source: str, binarize: str = "none",
            seed: int = 0) -> tuple[torch.Tensor, BatchTransform]:
    """Validate raw data for ``likelihood`` → (flat float tensor N×D in model space, per-batch transform)."""
    x = np.asarray(x)
    if x.ndim < 2:
        raise DataError(f"{source}: expected examples along axis 0 with shape (N, …), got {x.shape}")
    flat = x.reshape(len(x), -1)
    t = likelihood.prepare(flat, source)
    kind = "none"
    if likelihood.name == "bernoulli":
        if binarize == "static":
            g = torch.Generator().manual_seed(seed)
            t = (torch.rand(t.shape, generator=g) < t).float()
        elif binarize == "dynamic":
            kind = "dynamic"
    elif binarize != "none":
        raise DataError(f"binarize={binarize!r} applies only to the Bernoulli likelihood, not {likelihood.name!r}")
    if likelihood.name in ("gaussian", "gaussian_learned") and x.dtype == np.uint8:
        kind = "dequantize"
    return t.contiguous(), BatchTransform(kind)
