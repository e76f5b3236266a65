"""The per-batch training transform: dynamic binarization or uniform dequantization (x + u)/256 of 8-bit pixels.

Which one applies is declared by the likelihood (:meth:`vaekit.core.likelihoods.Likelihood.training_transform`).
"""
from __future__ import annotations

import torch

TRANSFORMS = ("none", "dynamic", "dequantize")


class BatchTransform:
    """Training-time randomness applied per batch: dynamic binarization or uniform dequantization."""

    def __init__(self, kind: str = "none") -> None:
        self.kind = kind

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if self.kind == "dynamic":
            return (torch.rand(x.shape, generator=generator, device=x.device) < x).to(x.dtype)
        if self.kind == "dequantize":
            return x + (torch.rand(x.shape, generator=generator, device=x.device) - 0.5) / 256.0
        return x
