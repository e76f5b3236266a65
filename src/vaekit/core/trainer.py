"""The trainer: one loop you can read top to bottom.

Each round — an epoch, or ``steps_per_round`` steps (a step budget ``max_steps`` instead of epochs) — per batch:
next batch (a seeded permutation over rows, optionally ``drop_last``, or a sampler callable: :mod:`vaekit.core.batches`),
transform, objective, NaN check, backward, clip, step (the cosine lr per step with a step budget:
:mod:`vaekit.core.schedule`) → validate (ELBO terms on x_valid, and/or a ``validator`` callable) → schedule →
keep-best / early stopping → atomic checkpoint (model, optimizer, scheduler, RNG states, data position, counters).
``resume=True`` continues from the checkpoint and reaches the same result as an uninterrupted run.
"""
from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vaekit.core.batches import Batches, make_batches
from vaekit.core.checkpoint import load_checkpoint, save_checkpoint, save_model
from vaekit.core.config import TrainConfig
from vaekit.core.evaluate import validate_sharded
from vaekit.core.objectives import LossOutput, make_objective
from vaekit.core.runlog import TensorBoardLog, write_metrics
from vaekit.core.schedule import (
    halve_lr,
    make_optimizer,
    make_scheduler,
    remember_base_lr,
    round_schedule,
    set_step_lr,
)
from vaekit.data.transforms import BatchTransform
from vaekit.errors import CheckpointError, TrainingError, VaekitError
from vaekit.runtime import (
    all_gather,
    all_reduce,
    autocast,
    barrier,
    distributed_device,
    init_distributed,
    progress_bar,
    resolve_precision,
    resolve_threads,
    threads,
)

RANK_SEED_STRIDE = 1_000_003  # rank r draws its reparameterization noise from seed + r·stride

CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.csv"
MODEL_DIR = "model"

Objective = Callable[..., LossOutput]  # (model, x, c, progress in passes) → LossOutput; optional terms, beta_at, k


@dataclass
class History:
    """Per-round metrics (list of dicts), the stopping reason and the optimizer steps run."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    stopped: str = ""
    best_epoch: int = -1
    best_val: float = math.inf
    steps: int = 0


class _Loss(torch.nn.Module):
    """model + objective as one module, so that DistributedDataParallel wraps the whole loss computation:
    forward(x, c, t) → (loss, recon, kl)."""

    def __init__(self, model: torch.nn.Module, objective: Objective) -> None:
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, x: torch.Tensor, c: torch.Tensor | None, t: float) -> tuple[torch.Tensor, ...]:
        out = self.objective(self.model, x, c, t)
        return out.loss, out.recon, out.kl


class Trainer:
    """Fits a VAE — or any module an ``objective`` scores. ``out_dir`` receives checkpoint.safetensors, metrics.csv
    and the best model in ``model/``.

    Device, threads and precision come from the runtime (``TrainConfig.device``, ``num_threads``, ``precision``).
    A checkpoint is written atomically after every round and at a time-limit stop (then mid-round: the data order,
    the step and the RNG states are kept), so ``fit(resume=True)`` after any stop — time limit, kill -9, early
    stopping, a finished run — gives the weights of the uninterrupted run.

    Hooks: ``objective`` (default: the registered ``config.objective``; its two logged terms are named by its
    ``terms``, default recon/kl), ``optimizer`` (model → optimizer: parameter groups, other lr per group),
    ``validator`` (model → held-out metric, lower is better; drives keep-best and early stopping; run on every rank),
    ``on_step`` (global step, {"loss", *terms} tensors), ``on_epoch`` (each round's row, main rank), ``reseed``
    (False: continue the caller's seeded torch stream instead of seeding it from ``config.seed``).
    """

    def __init__(self, model: torch.nn.Module, config: TrainConfig, out_dir: str | Path | None = None,
                 progress: bool = True, model_extra: dict[str, Any] | None = None,
                 on_epoch: Callable[[dict[str, float]], None] | None = None, *, objective: Objective | None = None,
                 optimizer: Callable[[torch.nn.Module], torch.optim.Optimizer] | None = None,
                 validator: Callable[[torch.nn.Module], float] | None = None,
                 on_step: Callable[[int, dict[str, torch.Tensor]], None] | None = None, reseed: bool = True) -> None:
        if out_dir is not None and not hasattr(model, "config"):
            raise VaekitError("a Trainer with out_dir needs a model with a .config (to_dict/from_dict) to save")
        self.model, self.cfg = model, config
        self.world = init_distributed(config.device)  # torchrun: join the process group (no-op for one process)
        self.device = distributed_device(config.device)
        self.precision = resolve_precision(config.precision, self.device)
        self.model.to(self.device)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.progress, self.model_extra, self.on_epoch = progress, model_extra or {}, on_epoch
        self.validator, self.on_step, self.reseed = validator, on_step, reseed
        self.objective: Objective = objective if objective is not None else make_objective(
            config.objective, beta=config.beta, warmup=config.warmup_epochs, free_bits=config.free_bits,
            k=config.iwae_k)
        self.optimizer = optimizer(model) if optimizer is not None else make_optimizer(model, config)
        self.per_step = config.max_steps > 0 or config.steps_per_round > 0  # rounds of steps, lr set per step
        self.scheduler = make_scheduler(self.optimizer, config, per_step=self.per_step)
        self.history = History()
        self._tb: TensorBoardLog | None = None

    # --- state ----------------------------------------------------------------------------------
    def _checkpoint(self, pos: dict[str, Any], batches: Batches, data_gen: torch.Generator,
                    best_state: dict[str, torch.Tensor] | None, elapsed: float, patience: int) -> None:
        """Everything needed to continue exactly: weights, optimizer, scheduler, RNG states, position, history."""
        if self.out_dir is None:
            return
        tensors = {"rng.data": data_gen.get_state()}
        tensors.update(self._rng_states())
        if not self.world.main:
            return
        order, order_info = batches.state()
        tensors.update(order)
        if "sums" in pos:
            tensors["pos.sums"] = pos["sums"]
        if best_state is not None:
            tensors.update({f"best.{k}": v for k, v in best_state.items()})
        info = {"epoch": pos["epoch"], "step": pos.get("step", 0), "finished": pos.get("finished", ""),
                "elapsed": elapsed, "patience": patience, "history": self.history.epochs,
                "best_epoch": self.history.best_epoch, "best_val": self.history.best_val,
                "nan_events": getattr(self, "nan_events", 0), "world_size": self.world.size, **order_info,
                "train_config": self.cfg.to_dict(), "model_config": self.model.config.to_dict()}
        save_checkpoint(self.out_dir / CHECKPOINT, model=self.model, optimizer=self.optimizer,
                        scheduler=self.scheduler, tensors=tensors, info=info)
        self._write_metrics()

    def _rng_states(self) -> dict[str, torch.Tensor]:
        """This process's noise generators; under torchrun every rank's (collective: all ranks call it)."""
        own = [("rng.torch", torch.get_rng_state())]
        if self.device.type == "cuda":
            own.append(("rng.cuda", torch.cuda.get_rng_state(self.device)))
        if self.world.size == 1:
            return dict(own)
        out = {}
        for name, state in own:
            via = state.to(self.device) if self.device.type == "cuda" else state  # NCCL gathers device tensors
            for r, t in enumerate(all_gather(via)):
                out[f"{name}.{r}"] = t.cpu()
        return out

    def _write_metrics(self) -> None:
        if self.out_dir is None or not self.history.epochs or not self.world.main:
            return
        write_metrics(self.out_dir / METRICS, self.history.epochs)

    def _resume(self, data_gen: torch.Generator, batches: Batches) -> dict[str, Any]:
        """Restore a checkpoint in place → the position to continue from (round, step, sums, best, …)."""
        assert self.out_dir is not None
        path = self.out_dir / CHECKPOINT
        extra, info = load_checkpoint(path, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler)
        try:
            same = type(self.model.config).from_dict(info.get("model_config", {})) == self.model.config
        except (VaekitError, TypeError, ValueError):
            same = False
        if not same:
            raise CheckpointError(f"{path}: checkpoint was written for another model config")
        saved_world = int(info.get("world_size", 1)) if isinstance(info.get("world_size", 1), int) else -1
        if saved_world != self.world.size:
            raise CheckpointError(f"{path}: checkpoint was written by {saved_world} process(es), "
                                  f"this run has {self.world.size}; resume with the same --nproc_per_node × --nnodes")
        sfx = "" if self.world.size == 1 else f".{self.world.rank}"
        try:
            torch.set_rng_state(extra["rng.torch" + sfx])
            data_gen.set_state(extra["rng.data"])
            if "rng.cuda" + sfx in extra and self.device.type == "cuda":
                torch.cuda.set_rng_state(extra["rng.cuda" + sfx], self.device)
            self.history.epochs = list(info["history"])
            self.history.best_epoch, self.history.best_val = int(info["best_epoch"]), float(info["best_val"])
            self.nan_events = int(info.get("nan_events", 0))
            step = int(info.get("step", 0))
            pos: dict[str, Any] = {
                "epoch": int(info["epoch"]) + (0 if step else 1), "step": step, "finished": str(info.get("finished", "")),
                "elapsed": float(info["elapsed"]), "patience": int(info["patience"]),
                "best": {k[5:]: v for k, v in extra.items() if k.startswith("best.")} or None}
            if step:
                pos["sums"] = extra["pos.sums"].float()
            info.setdefault("pass", int(info["epoch"]))  # a checkpoint of the epoch-only trainer: pass = epoch
            info.setdefault("pass_pos", step or getattr(batches, "steps_per_pass", 0))
            batches.restore(extra, info)
        except CheckpointError as e:  # the data order or the sampler state does not fit
            raise CheckpointError(f"{path}: {e}") from None
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{path}: checkpoint state is incomplete or corrupt "
                                  f"({e.__class__.__name__}: {e})") from None
        return pos

    # --- the loop -------------------------------------------------------------------------------
    def fit(self, x_train: Any, x_valid: torch.Tensor | None = None,
            transform: BatchTransform | None = None, c_train: torch.Tensor | None = None,
            c_valid: torch.Tensor | None = None, resume: bool = False) -> History:
        """Train on ``x_train`` — rows (a tensor or StreamedData) or a sampler ``f(batch_size) → batch``."""
        n_params = sum(p.numel() for p in self.model.parameters())
        with threads(resolve_threads(self.cfg.num_threads or None, n_params)):
            return self._fit(x_train, x_valid, transform or BatchTransform(), c_train, c_valid, resume)

    def _fit(self, x_train: Any, x_valid: torch.Tensor | None, transform: BatchTransform,
             c_train: torch.Tensor | None, c_valid: torch.Tensor | None, resume: bool) -> History:
        cfg, model, opt, dev, precision = self.cfg, self.model, self.optimizer, self.device, self.precision
        rank, size = self.world.rank, self.world.size
        loss_fn: torch.nn.Module = _Loss(model, self.objective)
        if size > 1:  # gradients averaged over the ranks during backward
            from torch.nn.parallel import DistributedDataParallel

            loss_fn = DistributedDataParallel(loss_fn, device_ids=[dev.index] if dev.type == "cuda" else None)
        if self.reseed:
            torch.manual_seed(cfg.seed + RANK_SEED_STRIDE * rank)
        data_gen = torch.Generator().manual_seed(cfg.seed + 1)
        batches = make_batches(x_train, c_train, cfg, transform, data_gen, rank, size)
        round_len = cfg.steps_per_round or batches.steps_per_pass  # steps per round (one epoch by default)
        total = cfg.max_steps or cfg.epochs * batches.steps_per_pass
        n_rounds = math.ceil(total / round_len)
        if self.per_step:
            remember_base_lr(opt)
        pos: dict[str, Any] = {"epoch": 0, "step": 0, "finished": "", "elapsed": 0.0, "patience": 0, "best": None}
        if resume and self.out_dir is not None and (self.out_dir / CHECKPOINT).exists():
            pos = self._resume(data_gen, batches)
        best_state, patience = pos["best"], pos["patience"]
        x_valid_d = None if x_valid is None else x_valid.to(dev)
        c_valid_d = None if c_valid is None else c_valid.to(dev)
        t_start, elapsed0 = time.perf_counter(), pos["elapsed"]  # the time limit counts from this invocation's start
        model.train()
        self.history.stopped = pos["finished"] or ("max_steps" if cfg.max_steps else "epochs")
        epoch = pos["epoch"]
        self.history.steps = min(total, epoch * round_len + pos["step"])
        while not pos["finished"] and epoch < n_rounds:
            snapshot = (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()))
            start = epoch * round_len
            length = min(round_len, total - start)  # steps in this round
            first = pos["step"] if epoch == pos["epoch"] else 0
            sums = pos["sums"].clone() if first else torch.zeros(3)
            bar = self._bar(epoch, n_rounds, length, first)
            timed_out, nan_stop, step = False, False, first - 1
            for step in range(first, length):
                if self.per_step and cfg.schedule == "cosine":
                    set_step_lr(opt, start + step, total, cfg.min_lr_ratio)
                xb, cb, t = batches.next()
                xb = xb.to(dev, non_blocking=True)
                cb = None if cb is None else cb.to(dev, non_blocking=True)
                with autocast(precision, dev):
                    loss, recon, kl = loss_fn(xb, cb, t)
                bad = not torch.isfinite(loss)
                if size > 1:  # every rank stops on a NaN anywhere, else the others wait in backward for ever
                    bad = bool(all_reduce(torch.tensor([float(bad)], device=dev), "max").item())
                if bad:
                    self._on_nan(epoch, step, start + step, snapshot)
                    nan_stop = True
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                sums += torch.stack([loss.detach().float(), recon.float(), kl.float()]).cpu()
                if self.on_step is not None:
                    self.on_step(start + step, dict(zip(("loss", *self._terms()), (loss.detach(), recon, kl))))
                if bar is not None and (step + 1) % cfg.log_every == 0:
                    s = sums / (step + 1)
                    bar.set_postfix(loss=f"{s[0]:.2f}", recon=f"{s[1]:.2f}", kl=f"{s[2]:.2f}", refresh=False)
                    bar.update(cfg.log_every)
                if cfg.time_limit_min:
                    over = time.perf_counter() - t_start > 60 * cfg.time_limit_min
                    if size > 1:  # all ranks stop at the same step
                        over = bool(all_reduce(torch.tensor([float(over)], device=dev), "max").item())
                    if over:
                        timed_out = True
                        break
            if bar is not None:
                bar.update(max(0, step + 1 - bar.n))
                bar.close()
            if nan_stop and self.per_step:  # a step budget: the rolled-back round runs again (its steps not spent)
                continue
            elapsed = elapsed0 + time.perf_counter() - t_start
            if size > 1:  # the round means and the clock are the ranks' averages: the same figures everywhere
                red = all_reduce(torch.cat([sums, torch.tensor([elapsed])]).to(dev, torch.float64)).cpu() / size
                sums, elapsed = red[:3].float(), float(red[3])
            done = step + 1
            self.history.steps = start + (length if nan_stop else done)  # a rolled-back epoch is spent
            if timed_out and done < length:  # stopped mid-round: keep the exact position
                self.history.stopped = "time_limit"
                self._checkpoint({"epoch": epoch, "step": done, "sums": sums}, batches, data_gen, best_state, elapsed,
                                 patience)
                break
            means = (sums / max(1, done)).tolist()
            row: dict[str, float] = {"epoch": epoch, "step": self.history.steps, "lr": opt.param_groups[0]["lr"]}
            if hasattr(self.objective, "beta_at"):
                row["beta"] = self.objective.beta_at(self.history.steps / batches.steps_per_pass)
            row.update(zip(("train_loss", *(f"train_{n}" for n in self._terms())), means))
            val_metric = means[0]
            if (epoch + 1) % cfg.val_every == 0:
                if x_valid_d is not None and len(x_valid_d):
                    k = int(getattr(self.objective, "k", 1))  # validate the bound being trained
                    v = validate_sharded(model, x_valid_d, c_valid_d, max(cfg.batch_size, 500), precision,
                                         cfg.seed + 2, k, rank, size)
                    row.update({f"val_{key}": val for key, val in v.items()})
                    val_metric = -v.get("iwae", v["elbo"])  # keep-best on the bound being trained
                if self.validator is not None:
                    val_metric = row["val_metric"] = self._validate_with_hook()
            row["time"] = elapsed
            self.history.epochs.append(row)
            timed = cfg.time_limit_min > 0 and not self.per_step  # the cosine may run over the time instead
            round_schedule(opt, self.scheduler, cfg, val_metric, epoch_frac=(epoch + 1) / n_rounds,
                           time_frac=elapsed / (elapsed0 + 60 * cfg.time_limit_min) if timed else None)
            if val_metric < self.history.best_val and not nan_stop:
                self.history.best_val, self.history.best_epoch = val_metric, epoch
                if cfg.keep_best:
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                patience = 0
            else:
                patience += 1
            finished = ""
            if cfg.early_stopping and patience >= cfg.early_stopping:
                finished = "early_stopping"
            elif epoch + 1 >= n_rounds:
                finished = "max_steps" if cfg.max_steps else "epochs"
            self._checkpoint({"epoch": epoch, "finished": finished}, batches, data_gen, best_state, elapsed, patience)
            if self.world.main and self.out_dir is not None:
                self._tb = self._tb or TensorBoardLog(self.out_dir / "tensorboard")
                self._tb.add(row)
            if self.on_epoch is not None and self.world.main:
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
        if self.out_dir is not None and self.world.main:
            extra = dict(self.model_extra)
            extra.update({"train_config": cfg.to_dict(), "best_epoch": self.history.best_epoch,
                          "stopped": self.history.stopped})
            save_model(model, self.out_dir / MODEL_DIR, extra=extra)
            self._write_metrics()
        barrier()  # the other ranks return once rank 0 has written the model
        return self.history

    def _terms(self) -> tuple[str, str]:
        """Names of the objective's two logged terms (LossOutput.recon, .kl): ``objective.terms`` or recon, kl."""
        return tuple(getattr(self.objective, "terms", ("recon", "kl")))  # type: ignore[return-value]

    def _validate_with_hook(self) -> float:
        """The ``validator``'s metric of the model in eval mode, without gradients."""
        assert self.validator is not None
        self.model.eval()
        with torch.no_grad():
            metric = float(self.validator(self.model))
        self.model.train()
        return metric

    def _on_nan(self, epoch: int, step: int, global_step: int,
                snapshot: tuple[dict[str, Any], dict[str, Any]]) -> None:
        """NaN/inf loss: raise with its position, or roll back to the round start with half the learning rate
        (an epoch budget then moves on to the next epoch; a step budget runs the round again)."""
        where = f"step {global_step} (round {epoch})" if self.per_step else f"epoch {epoch}, step {step}"
        msg = f"loss became NaN/inf at {where}"
        self.nan_events = getattr(self, "nan_events", 0) + 1
        if self.cfg.nan_policy == "raise" or self.nan_events > 3:
            raise TrainingError(msg + (" (after 3 rollbacks)" if self.nan_events > 3 else ""))
        self.model.load_state_dict(snapshot[0])
        self.optimizer.load_state_dict(snapshot[1])
        lr = halve_lr(self.optimizer)
        again = "the round, lr halved to {:.3g}; it runs again" if self.per_step else "the epoch, lr halved to {:.3g}"
        warnings.warn(msg + "; rolled back to the start of " + again.format(lr), stacklevel=2)

    def _bar(self, epoch: int, rounds: int, total: int, done: int = 0) -> Any:
        if not self.progress or not self.world.main:
            return None
        return progress_bar(total=total, initial=done, leave=False, mininterval=0.5,
                            desc=f"{'round' if self.per_step else 'epoch'} {epoch + 1}/{rounds}")
