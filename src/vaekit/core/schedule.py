"""Optimizers and learning-rate schedules for the :class:`~vaekit.core.trainer.Trainer`.

Per epoch (an epoch budget): torch's cosine annealing or reduce-on-plateau, stepped once per epoch; with a time
limit (``fit_schedule_to_time``) the cosine runs over whichever budget ends first, time or epochs.
Per step (a step budget, ``TrainConfig.max_steps``, or rounds of ``steps_per_round``), set before each step s of T:
    lr_g(s) = base_g · (r + (1 − r)·½(1 + cos π s/T)),   r = ``min_lr_ratio``, base_g = group g's starting lr
(each parameter group keeps its own base, so groups with different learning rates decay together).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from vaekit.core.config import TrainConfig

BASE_LR = "base_lr"  # the param-group key holding a group's undecayed lr (saved with the optimizer state)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam or AdamW over all parameters, one fused kernel per step where the build has it."""
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    kwargs: dict[str, Any] = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    try:
        return cls(model.parameters(), fused=True, **kwargs)  # one fused kernel per step (CPU and CUDA)
    except (RuntimeError, TypeError):
        return cls(model.parameters(), **kwargs)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, per_step: bool = False) -> Any:
    """The per-epoch torch scheduler for ``cfg.schedule`` (None for 'constant', and for 'cosine' run per step)."""
    if cfg.schedule == "cosine" and not per_step:
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs), eta_min=cfg.lr * cfg.min_lr_ratio)
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=5, min_lr=cfg.lr * cfg.min_lr_ratio)
    return None


def cosine_factor(step: int, total: int, min_ratio: float) -> float:
    """r + (1 − r)·½(1 + cos π·step/total): 1 at the first step, r at the end."""
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * step / max(1, total)))


def remember_base_lr(opt: torch.optim.Optimizer) -> None:
    """Record each group's starting lr as its base (kept if already there, e.g. restored from a checkpoint)."""
    for g in opt.param_groups:
        g.setdefault(BASE_LR, g["lr"])


def set_step_lr(opt: torch.optim.Optimizer, step: int, total: int, min_ratio: float) -> None:
    """lr_g = base_g · cosine_factor(step, total, r) for every group (call before step ``step``)."""
    for g in opt.param_groups:
        g["lr"] = g[BASE_LR] * cosine_factor(step, total, min_ratio)


def halve_lr(opt: torch.optim.Optimizer) -> float:
    """Halve every group's lr (and its base, so a per-step schedule continues at half) → the first group's lr."""
    for g in opt.param_groups:
        g["lr"] *= 0.5
        if BASE_LR in g:
            g[BASE_LR] *= 0.5
    return float(opt.param_groups[0]["lr"])


def round_schedule(opt: torch.optim.Optimizer, scheduler: Any, cfg: TrainConfig, val_metric: float,
                   time_frac: float | None, epoch_frac: float) -> None:
    """The lr update after a round. With ``time_frac`` (a time limit, per-epoch cosine, ``fit_schedule_to_time``):
    lr = lr_min + (lr − lr_min)·½(1 + cos π·p), p = min(1, max(t/T, e/E)), t the training time so far and T its value
    when this invocation's limit is reached, e/E the epochs done / epochs (robust to a slow or shared machine);
    else the torch scheduler's step (plateau: on ``val_metric``)."""
    if time_frac is not None and cfg.fit_schedule_to_time and cfg.schedule == "cosine" and scheduler is not None:
        frac = min(1.0, max(time_frac, epoch_frac))
        lo = cfg.lr * cfg.min_lr_ratio
        for g in opt.param_groups:
            g["lr"] = lo + (cfg.lr - lo) * 0.5 * (1 + math.cos(math.pi * frac))
    elif scheduler is not None:
        if cfg.schedule == "plateau":
            scheduler.step(val_metric)
        else:
            scheduler.step()
