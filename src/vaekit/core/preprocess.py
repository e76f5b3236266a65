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
from vaekit.data.stream import Rows
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


class StreamedData:
    """Training rows that stay on disk: ``x[idx]`` reads rows ``index[idx]`` of ``rows`` and maps them to model space
    (``likelihood.prepare``) — what :func:`prepare` does for in-memory data, one batch at a time."""

    def __init__(self, rows: Rows, likelihood: Likelihood, index: np.ndarray | None = None,
                 device: torch.device | str = "cpu") -> None:
        self.rows, self.likelihood = rows, likelihood
        self.index = np.arange(len(rows), dtype=np.int64) if index is None else np.asarray(index, dtype=np.int64)
        self.device = torch.device(device)

    def __len__(self) -> int:
        return len(self.index)

    def to(self, device: torch.device | str) -> StreamedData:
        """The same rows, delivered on ``device`` (as ``Tensor.to``; nothing is read now)."""
        return StreamedData(self.rows, self.likelihood, self.index, device)

    def __getitem__(self, idx: torch.Tensor | np.ndarray | slice) -> torch.Tensor:
        sel = self.index[idx] if isinstance(idx, slice) else self.index[np.asarray(idx, dtype=np.int64)]
        raw = self.rows.take(sel)
        return self.likelihood.prepare(raw.reshape(len(raw), -1), self.rows.source).contiguous().to(self.device)


def prepare_stream(rows: Rows, likelihood: Likelihood, binarize: str, valid_fraction: float = 0.1,
                   max_valid: int = 10_000, seed: int = 0) -> tuple[StreamedData, torch.Tensor, np.ndarray, BatchTransform]:
    """Out-of-core training data → (train rows on disk, validation rows in memory, their row numbers, per-batch
    transform).

    Every chunk is validated for the likelihood first (one sequential pass), so bad values fail before training; a
    seeded ``valid_fraction`` of the rows (at most ``max_valid``) is held out for validation."""
    n = len(rows)
    if n < 3:
        raise DataError(f"{rows.source}: {n} example(s); at least 3 are needed to stream (2 to train, 1 to validate)")
    if binarize == "static":
        raise DataError(f"{rows.source}: --binarize static draws the whole data set once and cannot stream; "
                        "binarize the file first or use --binarize dynamic")
    kind = "none"
    for block in rows.chunks():
        t = likelihood.prepare(block.reshape(len(block), -1), rows.source)
        _, kind = likelihood.training_transform(t[:1], block.dtype, binarize, seed)
    n_val = min(max_valid, n - 2, max(1, int(round(valid_fraction * n))))
    perm = np.random.default_rng(seed).permutation(n)
    valid, train = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    xv = likelihood.prepare(rows.take(valid).reshape(n_val, -1), rows.source + "[valid part]")
    if binarize != "none":  # validate on a fixed binarization, as in memory
        xv, _ = likelihood.training_transform(xv, rows.dtype, "static", seed + 7)
    return StreamedData(rows, likelihood, train), xv.contiguous(), valid, BatchTransform(kind)
