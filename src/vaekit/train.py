"""The trainer: one loop you can read top to bottom.

Each epoch: shuffle (seeded generator) → per batch: transform, objective, NaN check, backward, step → validate
→ schedule → keep-best / early stopping → atomic checkpoint (model, optimizer, scheduler, RNG states, counters).
``resume=True`` continues from the checkpoint and reaches the same result as an uninterrupted run.
"""
from __future__ import annotations

import contextlib
import copy
import csv
import io as _io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .config import ModelConfig, TrainConfig
from .data.transforms import BatchTransform
from .errors import CheckpointError, TrainingError
from .io import atomic_write_text, load_checkpoint, save_checkpoint, save_model
from .model import VAE
from .objectives import ELBO, make_objective

CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.csv"
MODEL_DIR = "model"


@dataclass
class History:
    """Per-epoch metrics (list of dicts) and the stopping reason."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    stopped: str = ""
    best_epoch: int = -1
    best_val: float = math.inf


def autocast(precision: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast (matmuls in bfloat16, reductions in float32) or a no-op for fp32."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    kwargs: dict[str, Any] = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    try:
        return cls(model.parameters(), fused=True, **kwargs)  # one fused kernel per step (CPU and CUDA)
    except (RuntimeError, TypeError):
        return cls(model.parameters(), **kwargs)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> Any:
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs), eta_min=cfg.lr * cfg.min_lr_ratio)
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=5, min_lr=cfg.lr * cfg.min_lr_ratio)
    return None


@torch.no_grad()
def validate(model: VAE, x: torch.Tensor, c: torch.Tensor | None, batch_size: int, precision: str,
             seed: int, k: int = 1) -> dict[str, float]:
    """Mean ELBO terms on held-out data with a fixed-seed draw (does not touch the global RNG);
    with k > 1 also the IWAE bound ``iwae`` = E log (1/k) Σ w_i."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    tot = {"elbo": 0.0, "recon": 0.0, "kl": 0.0}
    if k > 1:
        from .evaluate import log_weights

        tot["iwae"] = 0.0
        for i in range(0, len(x), batch_size):
            cb = None if c is None else c[i:i + batch_size]
            lw, _, _ = log_weights(model, x[i:i + batch_size], k, cb, gen, precision)
            tot["iwae"] += float((torch.logsumexp(lw, 0) - math.log(k)).sum())
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        cb = None if c is None else c[i:i + batch_size]
        with autocast(precision):
            out = model(xb, cb, generator=gen)
        log_px = model.log_px(out.params.float(), xb)
        kl = model.prior.kl(out.mu.float(), out.logvar.float())
        kl = kl.sum(-1) if kl is not None else model.log_q(out.z, out.mu, out.logvar) - model.prior.log_prob(out.z)
        tot["elbo"] += float((log_px - kl).sum())
        tot["recon"] += float(-log_px.sum())
        tot["kl"] += float(kl.sum())
    model.train()
    return {k: v / len(x) for k, v in tot.items()}


class Trainer:
    """Fits a VAE. ``out_dir`` receives checkpoint.safetensors, metrics.csv and the best model in ``model/``."""

    def __init__(self, model: VAE, config: TrainConfig, out_dir: str | Path | None = None,
                 progress: bool = True, model_extra: dict[str, Any] | None = None,
                 on_epoch: Callable[[dict[str, float]], None] | None = None) -> None:
        self.model, self.cfg = model, config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.progress, self.model_extra, self.on_epoch = progress, model_extra or {}, on_epoch
        self.objective: ELBO = make_objective(config.objective, beta=config.beta, warmup=config.warmup_epochs,
                                              free_bits=config.free_bits, k=config.iwae_k)
        self.optimizer = make_optimizer(model, config)
        self.scheduler = make_scheduler(self.optimizer, config)
        self.history = History()

    # --- state ----------------------------------------------------------------------------------
    def _checkpoint(self, epoch: int, data_gen: torch.Generator, best_state: dict[str, torch.Tensor] | None,
                    elapsed: float, patience: int) -> None:
        if self.out_dir is None:
            return
        tensors = {"rng.torch": torch.get_rng_state(), "rng.data": data_gen.get_state()}
        if best_state is not None:
            tensors.update({f"best.{k}": v for k, v in best_state.items()})
        info = {"epoch": epoch, "elapsed": elapsed, "patience": patience, "history": self.history.epochs,
                "best_epoch": self.history.best_epoch, "best_val": self.history.best_val,
                "train_config": self.cfg.to_dict(), "model_config": self.model.config.to_dict()}
        save_checkpoint(self.out_dir / CHECKPOINT, model=self.model, optimizer=self.optimizer,
                        scheduler=self.scheduler, tensors=tensors, info=info)
        self._write_metrics()

    def _write_metrics(self) -> None:
        if self.out_dir is None or not self.history.epochs:
            return
        buf = _io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(self.history.epochs[0].keys()))
        w.writeheader()
        w.writerows(self.history.epochs)
        atomic_write_text(self.out_dir / METRICS, buf.getvalue())

    def _resume(self, data_gen: torch.Generator) -> tuple[int, dict[str, torch.Tensor] | None, float, int]:
        assert self.out_dir is not None
        extra, info = load_checkpoint(self.out_dir / CHECKPOINT, model=self.model, optimizer=self.optimizer,
                                      scheduler=self.scheduler)
        if ModelConfig.from_dict(info.get("model_config", {})) != self.model.config:
            raise CheckpointError(f"{self.out_dir / CHECKPOINT}: checkpoint was written for another model config")
        torch.set_rng_state(extra["rng.torch"])
        data_gen.set_state(extra["rng.data"])
        best = {k[5:]: v for k, v in extra.items() if k.startswith("best.")} or None
        self.history.epochs = info["history"]
        self.history.best_epoch, self.history.best_val = info["best_epoch"], info["best_val"]
        return info["epoch"] + 1, best, info["elapsed"], info["patience"]

    # --- the loop -------------------------------------------------------------------------------
    def fit(self, x_train: torch.Tensor, x_valid: torch.Tensor | None = None,
            transform: BatchTransform | None = None, c_train: torch.Tensor | None = None,
            c_valid: torch.Tensor | None = None, resume: bool = False) -> History:
        cfg, model, opt = self.cfg, self.model, self.optimizer
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        transform = transform or BatchTransform()
        torch.manual_seed(cfg.seed)
        data_gen = torch.Generator().manual_seed(cfg.seed + 1)
        start_epoch, best_state, elapsed0, patience = 0, None, 0.0, 0
        if resume and self.out_dir is not None and (self.out_dir / CHECKPOINT).exists():
            start_epoch, best_state, elapsed0, patience = self._resume(data_gen)
        n = len(x_train)
        steps_per_epoch = math.ceil(n / cfg.batch_size)
        t0 = time.perf_counter() - elapsed0
        model.train()
        self.history.stopped = "epochs"
        for epoch in range(start_epoch, cfg.epochs):
            snapshot = (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()))
            sums = torch.zeros(3)
            perm = torch.randperm(n, generator=data_gen)
            bar = self._bar(epoch, steps_per_epoch)
            timed_out = False
            for step in range(steps_per_epoch):
                idx = perm[step * cfg.batch_size:(step + 1) * cfg.batch_size]
                xb = transform(x_train[idx], data_gen)
                cb = None if c_train is None else c_train[idx]
                with autocast(cfg.precision):
                    out = self.objective(model, xb, cb, epoch + step / steps_per_epoch)
                if not torch.isfinite(out.loss):
                    self._on_nan(epoch, step, snapshot)
                    break
                opt.zero_grad(set_to_none=True)
                out.loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                sums += torch.stack([out.loss.detach().float(), out.recon.float(), out.kl.float()])
                if bar is not None and (step + 1) % cfg.log_every == 0:
                    s = sums / (step + 1)
                    bar.set_postfix(loss=f"{s[0]:.2f}", recon=f"{s[1]:.2f}", kl=f"{s[2]:.2f}", refresh=False)
                    bar.update(cfg.log_every)
                if cfg.time_limit_min and time.perf_counter() - t0 > 60 * cfg.time_limit_min:
                    timed_out = True
                    break
            if bar is not None:
                bar.update(step + 1 - bar.n)
                bar.close()
            done = step + 1
            means = (sums / max(1, done)).tolist()
            row: dict[str, float] = {"epoch": epoch, "lr": opt.param_groups[0]["lr"],
                                     "beta": self.objective.beta_at(epoch + 1), "train_loss": means[0],
                                     "train_recon": means[1], "train_kl": means[2]}
            val_metric = means[0]
            if x_valid is not None and len(x_valid) and (epoch + 1) % cfg.val_every == 0:
                k = cfg.iwae_k if cfg.objective == "iwae" else 1
                v = validate(model, x_valid, c_valid, max(cfg.batch_size, 500), cfg.precision, cfg.seed + 2, k)
                row.update({f"val_{key}": val for key, val in v.items()})
                val_metric = -v.get("iwae", v["elbo"])  # keep-best on the bound being trained
            row["time"] = time.perf_counter() - t0
            self.history.epochs.append(row)
            if self.scheduler is not None:
                if cfg.schedule == "plateau":
                    self.scheduler.step(val_metric)
                else:
                    self.scheduler.step()
            if val_metric < self.history.best_val:
                self.history.best_val, self.history.best_epoch = val_metric, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                patience = 0
            else:
                patience += 1
            self._checkpoint(epoch, data_gen, best_state, time.perf_counter() - t0, patience)
            self._tensorboard(row)
            if self.on_epoch is not None:
                self.on_epoch(row)
            if timed_out:
                self.history.stopped = "time_limit"
                break
            if cfg.early_stopping and patience >= cfg.early_stopping:
                self.history.stopped = "early_stopping"
                break
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        if self.out_dir is not None:
            extra = dict(self.model_extra)
            extra.update({"train_config": cfg.to_dict(), "best_epoch": self.history.best_epoch,
                          "stopped": self.history.stopped})
            save_model(model, self.out_dir / MODEL_DIR, extra=extra)
            self._write_metrics()
        return self.history

    def _tensorboard(self, row: dict[str, float]) -> None:
        """Scalars to ``out_dir/tensorboard`` when the tensorboard package is installed (optional)."""
        if self.out_dir is None:
            return
        if not hasattr(self, "_tb"):
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.out_dir / "tensorboard"))
            except ImportError:
                self._tb = None
        if self._tb is not None:
            for key, value in row.items():
                if key != "epoch":
                    self._tb.add_scalar(key, value, int(row["epoch"]))
            self._tb.flush()

    def _on_nan(self, epoch: int, step: int, snapshot: tuple[dict[str, Any], dict[str, Any]]) -> None:
        """NaN/inf loss: raise with its position, or roll back to the epoch start with half the learning rate."""
        msg = f"loss became NaN/inf at epoch {epoch}, step {step}"
        self.nan_events = getattr(self, "nan_events", 0) + 1
        if self.cfg.nan_policy == "raise" or self.nan_events > 3:
            raise TrainingError(msg + (" (after 3 rollbacks)" if self.nan_events > 3 else ""))
        self.model.load_state_dict(snapshot[0])
        self.optimizer.load_state_dict(snapshot[1])
        for g in self.optimizer.param_groups:
            g["lr"] *= 0.5
        import warnings

        warnings.warn(msg + f"; rolled back to the start of the epoch, lr halved to {g['lr']:.3g}", stacklevel=2)

    def _bar(self, epoch: int, total: int) -> Any:
        if not self.progress:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=f"epoch {epoch + 1}/{self.cfg.epochs}", leave=False, mininterval=0.5)
