"""Where the Trainer's batches come from: a seeded permutation over rows, or a sampler callable.

* :class:`RowBatches` — rows of a tensor or :class:`~vaekit.core.preprocess.StreamedData`: each pass draws
  π ~ randperm(n) from the data generator and yields rows π[b·B:(b+1)·B], b = 0 … ⌈n/B⌉ − 1 (⌊n/B⌋ with
  ``drop_last``), the per-batch transform applied with the same generator; a new pass starts when one is used up.
* :class:`SamplerBatches` — any callable ``sampler(B) → batch`` (random crops, a synthetic stream); its state is
  checkpointed when it has ``state_dict()`` / ``load_state_dict()``.

Under torchrun every rank draws the whole global batch (the generators stay in step) and keeps rows r, r+size, ….
``next()`` also gives the position in passes, p = pass + b / steps_per_pass (the objective's warm-up clock).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch

from vaekit.core.config import TrainConfig
from vaekit.data.transforms import BatchTransform
from vaekit.errors import CheckpointError, DataError, VaekitError


@runtime_checkable
class Sampler(Protocol):
    """A batch source the caller owns: ``sampler(batch_size) → tensor (batch_size, …)``."""

    def __call__(self, batch_size: int) -> torch.Tensor: ...


class RowBatches:
    """Batches of rows in a seeded random order, pass after pass (see the module docstring)."""

    def __init__(self, x: Any, c: torch.Tensor | None, batch_size: int, drop_last: bool, transform: BatchTransform,
                 generator: torch.Generator, rank: int = 0, size: int = 1) -> None:
        self.x, self.c, self.bs, self.transform, self.gen = x, c, batch_size, transform, generator
        self.rank, self.size = rank, size
        n = len(x)
        self.steps_per_pass = n // batch_size if drop_last else math.ceil(n / batch_size)
        if self.steps_per_pass < 1:
            raise DataError(f"training data: {n} row(s) give no {'full ' if drop_last else ''}batch of {batch_size}")
        self.perm: torch.Tensor | None = None
        self.passes, self.pos = -1, self.steps_per_pass  # passes started − 1, batches taken from the current one

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None, float]:
        """The next (x, c, progress) of this rank; a new permutation when the current pass is used up."""
        if self.pos >= self.steps_per_pass:
            self.perm, self.passes, self.pos = torch.randperm(len(self.x), generator=self.gen), self.passes + 1, 0
        assert self.perm is not None
        idx = self.perm[self.pos * self.bs:(self.pos + 1) * self.bs]
        progress = self.passes + self.pos / self.steps_per_pass
        self.pos += 1
        xb = self.transform(self.x[idx], self.gen)  # the whole global batch: the generator stays in step on all ranks
        if self.size > 1:  # rank r trains on rows r, r+size, … of the global batch
            idx, xb = idx[self.rank::self.size], xb[self.rank::self.size]
        return xb, None if self.c is None else self.c[idx], progress

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """(tensors, JSON info) that :meth:`restore` continues from exactly (the permutation only mid-pass)."""
        mid = self.perm is not None and self.pos < self.steps_per_pass
        return ({"pos.perm": self.perm} if mid else {}), {"pass": self.passes, "pass_pos": self.pos}

    def restore(self, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
        self.passes, self.pos = int(info["pass"]), int(info["pass_pos"])
        if self.pos < self.steps_per_pass:
            if "pos.perm" not in tensors or len(tensors["pos.perm"]) != len(self.x):
                raise CheckpointError("the checkpoint's data order does not fit these rows")
            self.perm = tensors["pos.perm"].long()


class SamplerBatches:
    """Batches from a sampler callable; a "pass" is ``steps_per_pass`` steps (the Trainer's round)."""

    def __init__(self, sampler: Sampler | Callable[[int], torch.Tensor], batch_size: int, steps_per_pass: int,
                 rank: int = 0, size: int = 1) -> None:
        self.sampler, self.bs, self.steps_per_pass, self.rank, self.size = sampler, batch_size, steps_per_pass, rank, size
        self.taken = 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None, float]:
        xb, progress = self.sampler(self.bs), self.taken / self.steps_per_pass
        self.taken += 1
        return (xb[self.rank::self.size] if self.size > 1 else xb), None, progress

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        get = getattr(self.sampler, "state_dict", None)
        return {}, {"sampler_taken": self.taken, "sampler": get() if callable(get) else None}

    def restore(self, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
        put = getattr(self.sampler, "load_state_dict", None)
        if info.get("sampler") is None or not callable(put):
            raise CheckpointError("the sampler has no state_dict()/load_state_dict(): its run cannot resume exactly")
        put(info["sampler"])
        self.taken = int(info["sampler_taken"])


Batches = RowBatches | SamplerBatches


def make_batches(x: Any, c: torch.Tensor | None, cfg: TrainConfig, transform: BatchTransform,
                 generator: torch.Generator, rank: int = 0, size: int = 1) -> Batches:
    """Rows (a tensor or StreamedData: :class:`RowBatches`) or a sampler callable (:class:`SamplerBatches`, whose
    "pass" is a round: it needs a step budget, ``max_steps`` or ``steps_per_round``)."""
    if hasattr(x, "__len__") and hasattr(x, "__getitem__"):
        return RowBatches(x, c, cfg.batch_size, cfg.drop_last, transform, generator, rank, size)
    if not callable(x):
        raise VaekitError(f"training data must be rows (a tensor) or a sampler callable, got {type(x).__name__}")
    if not (cfg.max_steps or cfg.steps_per_round):
        raise VaekitError("training from a sampler needs a step budget: set max_steps (or steps_per_round)")
    return SamplerBatches(x, cfg.batch_size, cfg.steps_per_round or cfg.max_steps, rank, size)
