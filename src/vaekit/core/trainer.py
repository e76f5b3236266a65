"""The trainer: one loop you can read top to bottom.

Each epoch: shuffle (seeded generator) → per batch: transform, objective, NaN check, backward, step → validate
→ schedule → keep-best / early stopping → atomic checkpoint (model, optimizer, scheduler, RNG states, counters).
``resume=True`` continues from the checkpoint and reaches the same result as an uninterrupted run.
"""
from __future__ import annotations

import copy
import csv
import io as _io
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from vaekit.core.checkpoint import load_checkpoint, save_checkpoint, save_model
from vaekit.core.config import ModelConfig, TrainConfig
from vaekit.core.inference import log_weights
from vaekit.core.model import VAE
from vaekit.core.objectives import ELBO, make_objective
from vaekit.data.transforms import BatchTransform
from vaekit.errors import CheckpointError, TrainingError, VaekitError
from vaekit.files import atomic_write_text
from vaekit.runtime import (
    autocast,
    resolve_device,
    resolve_precision,
    resolve_threads,
    threads,
)

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
    gen = torch.Generator().manual_seed(seed)  # CPU draws, moved to the device: same on every device
    tot = {"elbo": 0.0, "recon": 0.0, "kl": 0.0}
    if k > 1:
        tot["iwae"] = 0.0
        for i in range(0, len(x), batch_size):
            cb = None if c is None else c[i:i + batch_size]
            lw, _, _ = log_weights(model, x[i:i + batch_size], k, cb, gen, precision)
            tot["iwae"] += float((torch.logsumexp(lw, 0) - math.log(k)).sum())
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        cb = None if c is None else c[i:i + batch_size]
        with autocast(precision, xb.device):
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
    """Fits a VAE. ``out_dir`` receives checkpoint.safetensors, metrics.csv and the best model in ``model/``.

    Device, threads and precision come from the runtime (``TrainConfig.device``, ``num_threads``, ``precision``).
    A checkpoint is written atomically after every epoch and at a time-limit stop (then mid-epoch: the permutation,
    the step and the RNG states are kept), so ``fit(resume=True)`` after any stop — time limit, kill -9, early
    stopping, a finished run — gives the weights of the uninterrupted run.
    """

    def __init__(self, model: VAE, config: TrainConfig, out_dir: str | Path | None = None,
                 progress: bool = True, model_extra: dict[str, Any] | None = None,
                 on_epoch: Callable[[dict[str, float]], None] | None = None) -> None:
        self.model, self.cfg = model, config
        self.device = resolve_device(config.device)
        self.precision = resolve_precision(config.precision, self.device)
        self.model.to(self.device)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.progress, self.model_extra, self.on_epoch = progress, model_extra or {}, on_epoch
        self.objective: ELBO = make_objective(config.objective, beta=config.beta, warmup=config.warmup_epochs,
                                              free_bits=config.free_bits, k=config.iwae_k)
        self.optimizer = make_optimizer(model, config)
        self.scheduler = make_scheduler(self.optimizer, config)
        self.history = History()

    # --- state ----------------------------------------------------------------------------------
    def _checkpoint(self, pos: dict[str, Any], data_gen: torch.Generator,
                    best_state: dict[str, torch.Tensor] | None, elapsed: float, patience: int) -> None:
        """Everything needed to continue exactly: weights, optimizer, scheduler, RNG states, position, history."""
        if self.out_dir is None:
            return
        tensors = {"rng.torch": torch.get_rng_state(), "rng.data": data_gen.get_state()}
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        if "perm" in pos:
            tensors["pos.perm"], tensors["pos.sums"] = pos["perm"], pos["sums"]
        if best_state is not None:
            tensors.update({f"best.{k}": v for k, v in best_state.items()})
        info = {"epoch": pos["epoch"], "step": pos.get("step", 0), "finished": pos.get("finished", ""),
                "elapsed": elapsed, "patience": patience, "history": self.history.epochs,
                "best_epoch": self.history.best_epoch, "best_val": self.history.best_val,
                "nan_events": getattr(self, "nan_events", 0),
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

    def _resume(self, data_gen: torch.Generator) -> dict[str, Any]:
        """Restore a checkpoint in place → the position to continue from (epoch, step, perm, sums, best, …)."""
        assert self.out_dir is not None
        extra, info = load_checkpoint(self.out_dir / CHECKPOINT, model=self.model, optimizer=self.optimizer,
                                      scheduler=self.scheduler)
        try:
            same = ModelConfig.from_dict(info.get("model_config", {})) == self.model.config
        except VaekitError:
            same = False
        if not same:
            raise CheckpointError(f"{self.out_dir / CHECKPOINT}: checkpoint was written for another model config")
        try:
            torch.set_rng_state(extra["rng.torch"])
            data_gen.set_state(extra["rng.data"])
            if "rng.cuda" in extra and self.device.type == "cuda":
                torch.cuda.set_rng_state(extra["rng.cuda"], self.device)
            self.history.epochs = list(info["history"])
            self.history.best_epoch, self.history.best_val = int(info["best_epoch"]), float(info["best_val"])
            self.nan_events = int(info.get("nan_events", 0))
            step = int(info.get("step", 0))
            pos: dict[str, Any] = {
                "epoch": int(info["epoch"]) + (0 if step else 1), "step": step, "finished": str(info.get("finished", "")),
                "elapsed": float(info["elapsed"]), "patience": int(info["patience"]),
                "best": {k[5:]: v for k, v in extra.items() if k.startswith("best.")} or None}
            if step:
                pos["perm"], pos["sums"] = extra["pos.perm"].long(), extra["pos.sums"].float()
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{self.out_dir / CHECKPOINT}: checkpoint state is incomplete or corrupt "
                                  f"({e.__class__.__name__}: {e})") from None
        return pos

    # --- the loop -------------------------------------------------------------------------------
    def fit(self, x_train: torch.Tensor, x_valid: torch.Tensor | None = None,
            transform: BatchTransform | None = None, c_train: torch.Tensor | None = None,
            c_valid: torch.Tensor | None = None, resume: bool = False) -> History:
        n_params = sum(p.numel() for p in self.model.parameters())
        with threads(resolve_threads(self.cfg.num_threads or None, n_params)):
            return self._fit(x_train, x_valid, transform or BatchTransform(), c_train, c_valid, resume)

    def _fit(self, x_train: torch.Tensor, x_valid: torch.Tensor | None, transform: BatchTransform,
             c_train: torch.Tensor | None, c_valid: torch.Tensor | None, resume: bool) -> History:
        cfg, model, opt, dev, precision = self.cfg, self.model, self.optimizer, self.device, self.precision
        torch.manual_seed(cfg.seed)
        data_gen = torch.Generator().manual_seed(cfg.seed + 1)
        pos: dict[str, Any] = {"epoch": 0, "step": 0, "finished": "", "elapsed": 0.0, "patience": 0, "best": None}
        if resume and self.out_dir is not None and (self.out_dir / CHECKPOINT).exists():
            pos = self._resume(data_gen)
        best_state, patience = pos["best"], pos["patience"]
        x_valid_d = None if x_valid is None else x_valid.to(dev)
        c_valid_d = None if c_valid is None else c_valid.to(dev)
        n = len(x_train)
        steps_per_epoch = math.ceil(n / cfg.batch_size)
        t_start, elapsed0 = time.perf_counter(), pos["elapsed"]  # the time limit counts from this invocation's start
        model.train()
        self.history.stopped = pos["finished"] or "epochs"
        epoch = pos["epoch"]
        while not pos["finished"] and epoch < cfg.epochs:
            snapshot = (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()))
            first = pos["step"] if epoch == pos["epoch"] else 0
            if first:
                perm, sums = pos["perm"], pos["sums"]
            else:
                perm, sums = torch.randperm(n, generator=data_gen), torch.zeros(3)
            bar = self._bar(epoch, steps_per_epoch, first)
            timed_out, nan_stop, step = False, False, first - 1
            for step in range(first, steps_per_epoch):
                idx = perm[step * cfg.batch_size:(step + 1) * cfg.batch_size]
                xb = transform(x_train[idx], data_gen).to(dev, non_blocking=True)
                cb = None if c_train is None else c_train[idx].to(dev, non_blocking=True)
                with autocast(precision, dev):
                    out = self.objective(model, xb, cb, epoch + step / steps_per_epoch)
                if not torch.isfinite(out.loss):
                    self._on_nan(epoch, step, snapshot)
                    nan_stop = True
                    break
                opt.zero_grad(set_to_none=True)
                out.loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                sums += torch.stack([out.loss.detach().float(), out.recon.float(), out.kl.float()]).cpu()
                if bar is not None and (step + 1) % cfg.log_every == 0:
                    s = sums / (step + 1)
                    bar.set_postfix(loss=f"{s[0]:.2f}", recon=f"{s[1]:.2f}", kl=f"{s[2]:.2f}", refresh=False)
                    bar.update(cfg.log_every)
                if cfg.time_limit_min and time.perf_counter() - t_start > 60 * cfg.time_limit_min:
                    timed_out = True
                    break
            if bar is not None:
                bar.update(max(0, step + 1 - bar.n))
                bar.close()
            elapsed = elapsed0 + time.perf_counter() - t_start
            if timed_out and step + 1 < steps_per_epoch:  # stopped mid-epoch: keep the exact position
                self.history.stopped = "time_limit"
                self._checkpoint({"epoch": epoch, "step": step + 1, "perm": perm, "sums": sums}, data_gen,
                                 best_state, elapsed, patience)
                break
            done = step + 1
            means = (sums / max(1, done)).tolist()
            row: dict[str, float] = {"epoch": epoch, "lr": opt.param_groups[0]["lr"],
                                     "beta": self.objective.beta_at(epoch + 1), "train_loss": means[0],
                                     "train_recon": means[1], "train_kl": means[2]}
            val_metric = means[0]
            if x_valid_d is not None and len(x_valid_d) and (epoch + 1) % cfg.val_every == 0:
                k = int(getattr(self.objective, "k", 1))  # validate the bound being trained
                v = validate(model, x_valid_d, c_valid_d, max(cfg.batch_size, 500), precision, cfg.seed + 2, k)
                row.update({f"val_{key}": val for key, val in v.items()})
                val_metric = -v.get("iwae", v["elbo"])  # keep-best on the bound being trained
            row["time"] = elapsed
            self.history.epochs.append(row)
            if self._schedule_over_time():
                # cosine over whichever budget ends first: lr = lr_min + (lr − lr_min)·½(1 + cos π·p),
                # p = max(t/T, e/E) with t the training time so far, T its value when this invocation's limit is
                # reached, e the epochs done and E = epochs (robust to a slow or shared machine)
                frac = min(1.0, max(elapsed / (elapsed0 + 60 * cfg.time_limit_min), (epoch + 1) / cfg.epochs))
                lo = cfg.lr * cfg.min_lr_ratio
                for g in opt.param_groups:
                    g["lr"] = lo + (cfg.lr - lo) * 0.5 * (1 + math.cos(math.pi * frac))
            elif self.scheduler is not None:
                if cfg.schedule == "plateau":
                    self.scheduler.step(val_metric)
                else:
                    self.scheduler.step()
            if val_metric < self.history.best_val and not nan_stop:
                self.history.best_val, self.history.best_epoch = val_metric, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                patience = 0
            else:
                patience += 1
            finished = ""
            if cfg.early_stopping and patience >= cfg.early_stopping:
                finished = "early_stopping"
            elif epoch + 1 >= cfg.epochs:
                finished = "epochs"
            self._checkpoint({"epoch": epoch, "finished": finished}, data_gen, best_state, elapsed, patience)
            self._tensorboard(row)
            if self.on_epoch is not None:
                self.on_epoch(row)
            epoch += 1
            if finished:
                self.history.stopped = finished
                break
            if timed_out:
                self.history.stopped = "time_limit"
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

    def _schedule_over_time(self) -> bool:
        """With a time limit and the cosine schedule, run the schedule over the time (``fit_schedule_to_time``)."""
        cfg = self.cfg
        return bool(cfg.fit_schedule_to_time and cfg.time_limit_min > 0 and cfg.schedule == "cosine"
                    and self.scheduler is not None)

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
        warnings.warn(msg + f"; rolled back to the start of the epoch, lr halved to {g['lr']:.3g}", stacklevel=2)

    def _bar(self, epoch: int, total: int, done: int = 0) -> Any:
        if not self.progress:
            return None
        return tqdm(total=total, initial=done, desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
                    leave=False,
                    mininterval=0.5)
