"""Training of the lossy image codec: one RD-VAE per λ, warm-started from its neighbour, then integer tables.

The level with the median λ is trained from scratch for ``steps`` steps; the others start from the nearest
already-trained level and are fine-tuned for ``finetune_steps`` (Adam, loss D + λ·R on random crops). Each level
trains through the one :class:`~vaekit.core.trainer.Trainer` (a step budget, a crop sampler as the batch source,
two parameter groups, the per-step cosine, the NaN guard and the time limit shared by all levels).
"""
from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from vaekit.core.config import TrainConfig
from vaekit.core.objectives import LossOutput
from vaekit.core.trainer import Trainer
from vaekit.errors import DataError, TrainingError, VaekitError
from vaekit.files import check_output_folder, retire_artifacts
from vaekit.jobs.compress.entropy import build_tables
from vaekit.jobs.compress.lossy import ImageCodec, load_codec, read_image, save_codec
from vaekit.jobs.compress.rd_model import RateDistortionLoss, RDConfig, RDNet

ENTROPY_LR_FACTOR = 5.0  # the factorized density adapts faster than the transforms need to
MIN_LR_RATIO = 0.1  # the cosine decays each group's lr to 10%
GRAD_CLIP = 5.0
LOG_EVERY = 200  # steps between log lines, and the Trainer's rounds (the NaN guard rolls back to a round's start)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".webp")


def load_images(path: str | Path) -> list[np.ndarray] | np.ndarray:
    """Training images: a folder of image files, or an .npz/.npy of uint8 (n,H,W[,C]) (key x_train or train)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}) in the folder")
        return [read_image(p) for p in files]
    if path.suffix == ".npz":
        with np.load(path) as z:
            key = next((k for k in ("x_train", "train", "x") if k in z.files), None)
            if key is None:
                raise DataError(f"{path}: needs an array x_train, train or x (has {z.files})")
            return z[key]
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.is_file():
        return [read_image(path)]
    raise DataError(f"{path}: not found")


def _as_list(images: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    """Normalize to a list of uint8 H×W×C arrays, all with the same channel count."""
    arr = list(images) if not isinstance(images, np.ndarray) else (list(images) if images.ndim >= 3 else [])
    if not arr:
        raise DataError("training images: need a non-empty list or an (n,H,W[,C]) uint8 array")
    out = []
    for a in arr:
        a = np.asarray(a)
        if a.dtype != np.uint8:
            raise DataError(f"training images must be uint8, got {a.dtype}")
        a = a[:, :, None] if a.ndim == 2 else a
        if a.ndim != 3 or a.shape[2] not in (1, 3):
            raise DataError(f"training images must be H×W or H×W×3, got {a.shape}")
        out.append(a)
    if len({a.shape[2] for a in out}) != 1:
        raise DataError("training images mix grayscale and RGB")
    return out


class CropSampler:
    """Random crops (size × size, optional flips) of random images → float batches (B,C,size,size) in [0,1]."""

    def __init__(self, images: list[np.ndarray], size: int, flips: bool, rng: np.random.Generator) -> None:
        self.images, self.size, self.flips, self.rng = images, size, flips, rng
        self.stack = np.stack(images) if all(a.shape[:2] == (size, size) for a in images) else None

    def __call__(self, batch: int) -> torch.Tensor:
        if self.stack is not None:
            b = self.stack[self.rng.integers(0, len(self.stack), batch)]
        else:
            crops = []
            for i in self.rng.integers(0, len(self.images), batch):
                a = self.images[i]
                top = int(self.rng.integers(0, a.shape[0] - self.size + 1))
                left = int(self.rng.integers(0, a.shape[1] - self.size + 1))
                crops.append(a[top:top + self.size, left:left + self.size])
            b = np.stack(crops)
        if self.flips:
            b = b[:, :, ::-1] if self.rng.random() < 0.5 else b
        return torch.from_numpy(np.ascontiguousarray(b.transpose(0, 3, 1, 2))).float().div_(255)

    def state_dict(self) -> dict[str, Any]:
        """The crop generator's state (JSON), so that a checkpointed run continues the same crops."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


class RDObjective:
    """L = D + λ·R (:class:`RateDistortionLoss`) as a Trainer objective; its logged terms are D (mse) and R (bpp)."""

    terms = ("mse", "bpp")

    def __init__(self, lmbda: float) -> None:
        self.crit = RateDistortionLoss(lmbda)

    def __call__(self, model: torch.nn.Module, x: torch.Tensor, c: torch.Tensor | None = None,
                 progress: float = math.inf) -> LossOutput:
        res = self.crit(model(x), x)
        return LossOutput(res["loss"], res["mse"].detach(), res["bpp"].detach(), -res["loss"].detach())


def _fit(net: RDNet, lmbda: float, sample: Callable[[int], torch.Tensor], steps: int, batch: int, lr: float,
         deadline: float, log: Callable[[str], None] | None) -> dict[str, float]:
    """``steps`` Adam steps on D + λR through the Trainer: lr_g(s) = lr_g·(0.1 + 0.9·½(1 + cos π s/steps)), the
    entropy model at ENTROPY_LR_FACTOR × lr, gradient norm clipped at 5 → mean loss/mse/bpp of the last 10% steps
    (of the last step run, when the time limit stops it before them)."""
    ent = list(net.entropy.parameters())
    rest = [p for n, p in net.named_parameters() if not n.startswith("entropy.")]
    tail_from, tail = steps - max(1, steps // 10), dict[int, tuple[float, float, float]]()
    last: dict[str, torch.Tensor] = {}

    def on_step(step: int, v: dict[str, torch.Tensor]) -> None:
        last.update(v)
        if step >= tail_from:  # by step: a round that the NaN guard runs again overwrites its first try
            tail[step] = (v["loss"].item(), v["mse"].item(), v["bpp"].item())
        if log and (step % LOG_EVERY == 0 or step == steps - 1):
            log(f"λ={lmbda:g} step {step + 1}/{steps} loss {v['loss'].item():.2f} mse {v['mse'].item():.2f} "
                f"bpp {v['bpp'].item():.3f}")

    def adam(_: torch.nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam([{"params": rest}, {"params": ent, "lr": lr * ENTROPY_LR_FACTOR}], lr=lr)

    left_min = (deadline - time.monotonic()) / 60  # the time limit is shared by the levels; none left: one step
    cfg = TrainConfig(max_steps=steps, steps_per_round=min(steps, LOG_EVERY), batch_size=batch, lr=lr,
                      schedule="cosine", min_lr_ratio=MIN_LR_RATIO, grad_clip=GRAD_CLIP, precision="fp32", device="cpu",
                      keep_best=False, warmup_epochs=0.0,
                      time_limit_min=0.0 if math.isinf(left_min) else max(left_min, 1e-9))
    trainer = Trainer(net, cfg, progress=False, objective=RDObjective(lmbda), optimizer=adam, on_step=on_step,
                      reseed=False)  # the crops and the quantization noise continue train_codec's seeded streams
    try:
        hist = trainer.fit(sample)
    except TrainingError as e:
        raise TrainingError(f"codec training (λ={lmbda:g}): {e}") from None
    if not tail and last:  # stopped by the time limit before the last 10%: the last step's figures
        tail[-1] = (last["loss"].item(), last["mse"].item(), last["bpp"].item())
    t = np.array(list(tail.values())) if tail else np.full((1, 3), np.nan)
    return {"loss": float(t[:, 0].mean()), "mse": float(t[:, 1].mean()), "bpp": float(t[:, 2].mean()),
            "steps": hist.steps}


def train_codec(images: Sequence[np.ndarray] | np.ndarray | str | Path, out_dir: str | Path,
                lambdas: Sequence[float], *, N: int = 64, M: int = 96, n_down: int = 4, kernel: int = 5,
                nonlinearity: str = "gdn", steps: int = 2000, finetune_steps: int = 500, batch_size: int = 8,
                crop: int = 128, lr: float = 1e-3, flips: bool = True, seed: int = 0, time_limit_min: float = 0.0,
                log: Callable[[str], None] | None = None, overwrite: bool = False) -> ImageCodec:
    """Train one level per λ (larger λ → fewer bits), build the integer tables, save the codec folder (a folder
    holding a codec, another vaekit artifact or other files is refused unless ``overwrite``)."""
    replaced = check_output_folder(out_dir, "codec", overwrite)
    if isinstance(images, (str, Path)):
        images = load_images(images)
    imgs = _as_list(images)
    lams = sorted({float(lm) for lm in lambdas}, reverse=True)
    if not lams or lams[-1] <= 0:
        raise VaekitError(f"lambdas must be positive numbers, got {list(lambdas)}")
    if steps < 1 or finetune_steps < 0 or batch_size < 1:
        raise VaekitError("steps and batch size must be ≥ 1 (finetune steps ≥ 0)")
    if not (math.isfinite(lr) and lr > 0):
        raise VaekitError(f"lr must be a finite number > 0, got {lr}")
    cfg = RDConfig(channels=int(imgs[0].shape[2]), N=N, M=M, n_down=n_down, kernel=kernel, nonlinearity=nonlinearity)
    s = cfg.stride
    size = min(crop, *(min(a.shape[:2]) for a in imgs)) // s * s
    if size < s:
        raise DataError(f"training images must be at least {s}×{s} for a codec with {n_down} stride-2 stages")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    sample = CropSampler(imgs, size, flips, rng)
    codec = ImageCodec(cfg, lams)
    deadline = time.monotonic() + (time_limit_min * 60 if time_limit_min > 0 else float("inf"))
    mid = len(lams) // 2
    order = [mid] + [i for d in range(1, len(lams)) for i in (mid - d, mid + d) if 0 <= i < len(lams)]
    info: list[dict[str, Any]] = [{} for _ in lams]
    t0, c0 = time.perf_counter(), time.process_time()
    for k, q in enumerate(order):
        net = codec.levels[q]
        if k > 0:
            src = min((i for i in order[:k]), key=lambda i: abs(i - q))
            net.resize_tables(int(codec.levels[src].table_freq.shape[1]))
            net.load_state_dict(copy.deepcopy(codec.levels[src].state_dict()))
        n_steps, step_lr = (steps, lr) if k == 0 else (finetune_steps or 1, lr / 2)
        stats = _fit(net, lams[q], sample, n_steps, batch_size, step_lr, deadline, log)
        build_tables(net)
        info[q] = {"lambda": lams[q], "train": stats, "crop": size, "warm_start": None if k == 0 else int(src)}
    codec.info = info
    retire_artifacts(replaced)
    save_codec(codec, out_dir, extra={"train": {"images": len(imgs), "seed": seed, "batch_size": batch_size,
                                                "seconds": round(time.perf_counter() - t0, 1),
                                                "cpu_seconds": round(time.process_time() - c0, 1)}})
    return load_codec(out_dir)
