"""Configuration dataclasses; every architecture and training choice lives here and round-trips through JSON."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

from vaekit.errors import VaekitError
from vaekit.runtime import PRECISIONS, check_seed

T = TypeVar("T")

LIKELIHOODS = ("bernoulli", "gaussian", "gaussian_learned", "logistic", "categorical", "mixed")
COLUMN_KINDS = ("continuous", "binary", "categorical")
ARCHS = ("mlp", "conv")
OBJECTIVES = ("elbo", "iwae")


def _from_dict(cls: type[T], data: dict[str, Any], what: str) -> T:
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise VaekitError(f"{what}: unknown key(s) {unknown}")
    kwargs = dict(data)
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in kwargs and isinstance(kwargs[f.name], list) and "tuple" in str(f.type):
            kwargs[f.name] = tuple(kwargs[f.name])
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:  # e.g. "hidden": "abc" in a hand-edited config.json
        raise VaekitError(f"{what}: invalid value ({e})") from None


@dataclass
class ModelConfig:
    """Architecture of a VAE: encoder q(z|x), prior p(z), decoder p(x|z)."""

    input_shape: tuple[int, ...] = (784,)
    latent_dim: int = 40
    arch: str = "mlp"
    hidden: tuple[int, ...] = (300, 300)
    channels: tuple[int, ...] = (32, 64)
    activation: str = "tanh"
    likelihood: str = "bernoulli"
    n_categories: int = 0  # for the categorical likelihood
    gaussian_sigma: float = 0.1  # fixed sigma of the "gaussian" likelihood
    logvar_min: float = -12.0  # the posterior log-variance is softly kept in [logvar_min, logvar_max]
    logvar_max: float = 8.0
    prior: str = "standard_normal"
    n_conditions: int = 0  # >0: conditional VAE, one-hot condition fed to encoder and decoder
    obs_logvar_min: float = -9.0  # floor of the decoder's learned log-variance (gaussian_learned, mixed)
    obs_variance: str = "decoder"  # gaussian_learned / mixed: log σ² from the decoder, or one free "column" parameter
    column_kinds: tuple[str, ...] = ()  # likelihood "mixed": continuous | binary | categorical per column
    column_sizes: tuple[int, ...] = ()  # likelihood "mixed": categories per categorical column, 1 otherwise

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(s) for s in self.input_shape)
        self.hidden = tuple(int(h) for h in self.hidden)
        self.channels = tuple(int(c) for c in self.channels)
        self.column_kinds = tuple(str(k) for k in self.column_kinds)
        self.column_sizes = tuple(int(n) for n in self.column_sizes)
        if self.likelihood not in LIKELIHOODS:
            raise VaekitError(f"likelihood {self.likelihood!r} is not one of {list(LIKELIHOODS)}")
        if self.arch not in ARCHS:
            raise VaekitError(f"arch {self.arch!r} is not one of {list(ARCHS)}")
        if self.obs_variance not in ("decoder", "column"):
            raise VaekitError(f"obs_variance {self.obs_variance!r} is not one of ['decoder', 'column']")
        if self.obs_variance == "column" and self.likelihood not in ("gaussian_learned", "mixed"):
            raise VaekitError("obs_variance 'column' needs likelihood 'gaussian_learned' or 'mixed'")
        if self.latent_dim < 1:
            raise VaekitError(f"latent_dim must be >= 1, got {self.latent_dim}")
        if self.arch == "conv" and len(self.input_shape) != 3:
            raise VaekitError(f"arch 'conv' needs input_shape (C, H, W), got {self.input_shape}")
        if self.likelihood == "categorical" and self.n_categories < 2:
            raise VaekitError("likelihood 'categorical' needs n_categories >= 2")
        if not self.logvar_min < self.logvar_max:
            raise VaekitError("logvar_min must be < logvar_max")
        if self.likelihood == "mixed":
            self._check_mixed()

    def _check_mixed(self) -> None:
        """Mixed tables: one input per continuous/binary column, K per categorical one, plus one mask bit per column."""
        kinds, sizes = self.column_kinds, self.column_sizes
        if not kinds or len(kinds) != len(sizes):
            raise VaekitError("likelihood 'mixed' needs column_kinds and column_sizes of equal, non-zero length")
        bad = sorted({k for k in kinds if k not in COLUMN_KINDS})
        if bad:
            raise VaekitError(f"column kind(s) {bad} not in {list(COLUMN_KINDS)}")
        if any(n < 2 for k, n in zip(kinds, sizes) if k == "categorical"):
            raise VaekitError("likelihood 'mixed': every categorical column needs column_sizes >= 2")
        if self.arch != "mlp":
            raise VaekitError("likelihood 'mixed' needs arch 'mlp'")
        expected = sum(n if k == "categorical" else 1 for k, n in zip(kinds, sizes)) + len(kinds)
        if self.input_shape != (expected,):
            raise VaekitError(f"likelihood 'mixed': input_shape must be ({expected},) for these columns "
                              f"(values + one mask bit per column), got {self.input_shape}")

    @property
    def data_dim(self) -> int:
        n = 1
        for s in self.input_shape:
            n *= s
        return n

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        return _from_dict(cls, data, "model config")


@dataclass
class TrainConfig:
    """Optimisation: objective, schedule, stopping rule and bookkeeping."""

    epochs: int = 100
    batch_size: int = 100
    lr: float = 1e-3
    optimizer: str = "adam"  # adam | adamw
    weight_decay: float = 0.0
    schedule: str = "cosine"  # constant | cosine | plateau
    min_lr_ratio: float = 0.05
    objective: str = "elbo"  # elbo | iwae
    iwae_k: int = 5
    beta: float = 1.0
    warmup_epochs: float = 0.0  # linear KL warm-up from 0 to beta
    free_bits: float = 0.0  # nats per latent dimension (Kingma et al. 2016)
    binarize: str = "none"  # none | static | dynamic   (bernoulli only)
    precision: str = "auto"  # auto | fp32 | bf16 (autocast; auto = bf16 where the device multiplies bf16 natively)
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    early_stopping: int = 0  # patience in epochs; 0 = off
    time_limit_min: float = 0.0  # 0 = no limit
    grad_clip: float = 0.0
    nan_policy: str = "rollback"  # rollback | raise
    seed: int = 0
    val_every: int = 1
    log_every: int = 50
    num_threads: int = 0  # 0 = automatic (OMP_NUM_THREADS, else 1 for small models, all cores for large ones)

    def __post_init__(self) -> None:
        checks = {
            "optimizer": ("adam", "adamw"), "schedule": ("constant", "cosine", "plateau"),
            "objective": OBJECTIVES, "binarize": ("none", "static", "dynamic"),
            "precision": PRECISIONS, "nan_policy": ("rollback", "raise"),
        }
        for name, allowed in checks.items():
            if getattr(self, name) not in allowed:
                raise VaekitError(f"{name} {getattr(self, name)!r} is not one of {list(allowed)}")
        check_seed(self.seed)
        if not isinstance(self.device, str) or not self.device:
            raise VaekitError(f"device must be a name such as 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.num_threads < 0:
            raise VaekitError(f"num_threads must be >= 0 (0 = automatic), got {self.num_threads}")
        if self.epochs < 0 or self.batch_size < 1 or self.iwae_k < 1:
            raise VaekitError("epochs >= 0, batch_size >= 1 and iwae_k >= 1 are required")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise VaekitError(f"lr must be a finite number > 0, got {self.lr}")
        for name in ("weight_decay", "beta", "warmup_epochs", "free_bits", "time_limit_min", "grad_clip",
                     "early_stopping"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise VaekitError(f"{name} must be a finite number >= 0, got {v}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        return _from_dict(cls, data, "train config")


def dumps(obj: Any) -> str:
    if dataclasses.is_dataclass(obj):
        obj = asdict(obj)  # type: ignore[arg-type]
    return json.dumps(obj, indent=2, sort_keys=True)
