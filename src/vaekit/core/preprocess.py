"""Preprocessing declared per likelihood, validated once (``prepare``) plus a per-batch transform for training.

* Bernoulli: values in [0, 1]; ``binarize='static'`` samples x ~ Bernoulli(p) once (seeded),
  ``'dynamic'`` re-samples every batch.
* Gaussian on 8-bit pixels: bin centres (x + ½)/256 for evaluation, uniform dequantization (x + u)/256 in training.
* Discretized logistic: 8-bit pixels mapped to [−1, 1]; categorical: integers 0..K−1.
"""
from __future__ import annotations

import numpy as np
import torch

from vaekit.core.likelihoods import Likelihood
from vaekit.data.transforms import BatchTransform
from vaekit.errors import DataError


def prepare(x: np.ndarray, likelihood: Likelihood, source: str, binarize: str = "none",
            seed: int = 0) -> tuple[torch.Tensor, BatchTransform]:
    """Validate raw data for ``likelihood`` → (flat float tensor N×D in model space, per-batch transform)."""
    x = np.asarray(x)
    if x.ndim < 2:
        raise DataError(f"{source}: expected examples along axis 0 with shape (N, …), got {x.shape}")
    flat = x.reshape(len(x), -1)
    t = likelihood.prepare(flat, source)
    t, kind = likelihood.training_transform(t, x.dtype, binarize, seed)
    return t.contiguous(), BatchTransform(kind)
