"""Configuration dataclasses; every architecture and training choice lives here and round-trips through JSON."""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

from vaekit.core.flows import POSTERIORS
from vaekit.core.likelihoods import LIKELIHOODS
from vaekit.core.nn.blocks import ACTIVATIONS, DECODERS, ENCODERS
from vaekit.core.nn.ladder import ladder_parameter_count
from vaekit.core.nn.resnet import resnet_parameter_count
from vaekit.core.objectives import OBJECTIVES
from vaekit.core.priors import PRIORS
from vaekit.errors import VaekitError
from vaekit.runtime import PRECISIONS, check_seed

T = TypeVar("T")

OBS_VARIANCES = ("decoder", "column")


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


# --- sizes of a model config (untrusted when read from config.json) ---------------------------------------------
MAX_PARAMETERS = 50_000_000  # weights a ModelConfig may describe (≈ 200 MB in float32), estimated before building
MAX_SIZE = 1 << 24  # any one size: input dimension, layer width, channels, latent_dim, n_conditions, n_categories
MAX_LAYERS = 64  # entries of hidden / channels
MAX_LOGVAR = 50.0  # |logvar_min|, |logvar_max|, |obs_logvar_min|, |obs_logvar_max| (exp(±25) is finite in float32)
MAX_STOCHASTIC_LAYERS = 16
MAX_COMPONENTS = 100_000  # mixture components / VampPrior pseudo-inputs


def _show(value: Any) -> str:
    """A short repr of an untrusted value (a 5000-digit integer or a long list is not echoed)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** 18:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    try:
        r = repr(value)
    except (ValueError, RecursionError):
        return f"a {type(value).__name__} too large to show"
    return r if len(r) <= 60 else r[:57] + "..."


def _is_integer(value: Any) -> bool:
    """An integer of any kind (Python or NumPy), not a float and not a bool."""
    return not isinstance(value, bool) and isinstance(value, numbers.Integral)


def is_whole(value: Any, lo: int = 1) -> bool:
    """value is an integer (not a float, not a bool) ≥ lo: the count check of the estimators' parameters."""
    return _is_integer(value) and value >= lo


def _int(value: Any, name: str, lo: int = 1, hi: int = MAX_SIZE) -> int:
    """An integer (not a float, not a bool) in lo..hi, else a one-line VaekitError naming the field."""
    if not _is_integer(value):
        raise VaekitError(f"{name} must be an integer, got {_show(value)}")
    v = int(value)
    if not lo <= v <= hi:
        raise VaekitError(f"{name} must be an integer in {lo}..{hi}, got {_show(v)}")
    return v


def _ints(values: Any, name: str, min_len: int, max_len: int) -> tuple[int, ...]:
    """A list/tuple of at most ``max_len`` integers in 1..MAX_SIZE."""
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__len__") or not hasattr(values, "__iter__"):
        raise VaekitError(f"{name} must be a list of integers, got {_show(values)}")
    if not min_len <= len(values) <= max_len:
        raise VaekitError(f"{name} must hold {min_len}..{max_len} sizes, got {len(values)}")
    return tuple(_int(v, f"{name}[{i}]") for i, v in enumerate(values))


def _float(value: Any, name: str, lo: float, hi: float, open_lo: bool = False) -> float:
    """A finite real number (not a bool) in [lo, hi] (or (lo, hi] with ``open_lo``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise VaekitError(f"{name} must be a number, got {_show(value)}")
    v = float(value)
    if not math.isfinite(v) or not (lo < v if open_lo else lo <= v) or v > hi:
        raise VaekitError(f"{name} must be a finite number in {'(' if open_lo else '['}{lo:g}, {hi:g}], got {v}")
    return v


def parameter_estimate(cfg: "ModelConfig") -> tuple[int, str]:
    """(weights the MLP or conv VAE of ``cfg`` will hold, an upper estimate; the largest layer, naming its fields),
    from the sizes alone: nothing is built. P = max(2, n_categories) outputs per data dimension bounds every
    likelihood's decoder width."""
    D, C, L = math.prod(cfg.input_shape), cfg.n_conditions, cfg.latent_dim
    P = max(2, cfg.n_categories)
    terms: list[tuple[int, str]] = []
    if cfg.arch in ("conv", "resnet") and len(cfg.input_shape) == 3 and cfg.channels:
        c, h, w = cfg.input_shape
        hid = cfg.hidden[-1] if cfg.hidden else 256
        for i, ch in enumerate(cfg.channels):
            terms.append(((16 * c + 1) * ch, f"channels[{i}]"))
            c, h, w = ch, max(1, h // 2), max(1, w // 2)
        terms.append(((c * h * w + C + 1) * hid, "input_shape × channels[-1] → hidden[-1] (encoder fc)"))
        terms.append(((hid + 1) * 2 * L, "hidden[-1] × latent_dim (posterior)"))
        n = len(cfg.channels)
        c, h, w = cfg.input_shape
        h0, w0 = -(-h // 2 ** n), -(-w // 2 ** n)
        chans = list(reversed(cfg.channels))
        terms.append(((L + C + 1) * hid, "latent_dim + n_conditions → hidden[-1] (decoder fc)"))
        terms.append(((hid + 1) * chans[0] * h0 * w0, "hidden[-1] → input_shape × channels[-1] (decoder fc)"))
        for i, ch in enumerate(chans):
            out = chans[i + 1] if i + 1 < n else c * P
            terms.append(((16 * ch + 1) * out, f"channels[{n - 1 - i}] (decoder)"))
    else:
        k = len(cfg.hidden)
        enc = [(D + C, "input_shape + n_conditions"), *((h, f"hidden[{i}]") for i, h in enumerate(cfg.hidden)),
               (2 * L, "2·latent_dim")]
        dec = [(L + C, "latent_dim + n_conditions"), *((cfg.hidden[i], f"hidden[{i}]") for i in reversed(range(k))),
               (P * D, "input_shape × outputs per value")]
        for layers in (enc, dec):
            for (a, na), (b, nb) in zip(layers[:-1], layers[1:]):
                terms.append(((a + 1) * b, f"{na} → {nb}"))
    terms += _zoo_terms(cfg, P)
    where = max(terms)[1]
    return sum(t for t, _ in terms), where


def _zoo_terms(cfg: "ModelConfig", P: int) -> list[tuple[int, str]]:
    """Weights of the model-zoo parts: residual blocks, mixture / VampPrior components, IAF steps, ladder layers."""
    width = cfg.hidden[-1] if cfg.hidden else (256 if cfg.arch in ("conv", "resnet") else cfg.data_dim + cfg.n_conditions)
    terms = []
    if cfg.arch == "resnet":
        terms.append((resnet_parameter_count(cfg, P), "channels × resnet_blocks (residual blocks)"))
    if isinstance(cfg.prior, str) and cfg.prior in PRIORS:
        terms.append((PRIORS.get(cfg.prior).parameter_count(cfg), "prior_components (prior)"))
    if isinstance(cfg.posterior, str) and cfg.posterior in POSTERIORS:
        terms.append((POSTERIORS.get(cfg.posterior).parameter_count(cfg, width), "flow_steps × flow_hidden (IAF)"))
    if cfg.stochastic_layers > 1:
        terms.append((ladder_parameter_count(cfg.stochastic_layers, cfg.latent_dim, width),
                      "stochastic_layers × hidden[-1] (ladder)"))
    return terms


# fields of the model zoo (and obs_logvar_max, added later), left out of ``to_dict`` at these defaults: the config.json
# (and so the checksums and compression fingerprints) of every model made before them stays byte for byte what it was
ZOO_DEFAULTS: dict[str, Any] = {"stochastic_layers": 1, "posterior": "gaussian", "prior_components": 0,
                                "flow_steps": 2, "flow_hidden": 0, "resnet_blocks": 1, "obs_logvar_max": 5.0}


# The model-zoo choices the table estimators (detector, imputer, generator) expose as parameters of their own
ESTIMATOR_ZOO_PARAMS = ("prior", "posterior", "stochastic_layers")


def estimator_zoo(est: Any) -> dict[str, Any]:
    """An estimator's ``prior``, ``posterior`` and ``stochastic_layers`` as ModelConfig fields, checked (one-line
    VaekitError naming the parameter: an unknown prior or posterior lists the registered ones)."""
    out = {name: getattr(est, name) for name in ESTIMATOR_ZOO_PARAMS}
    PRIORS.check(out["prior"])
    POSTERIORS.check(out["posterior"])
    out["stochastic_layers"] = _int(out["stochastic_layers"], "stochastic_layers", hi=MAX_STOCHASTIC_LAYERS)
    return out


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
    obs_logvar_max: float = 5.0  # ceiling of the decoder's learned log-variance (gaussian_learned, mixed)
    obs_variance: str = "decoder"  # gaussian_learned / mixed: log σ² from the decoder, or one free "column" parameter
    column_kinds: tuple[str, ...] = ()  # likelihood "mixed": continuous | binary | categorical per column
    column_sizes: tuple[int, ...] = ()  # likelihood "mixed": categories per categorical column, 1 otherwise
    # model zoo (README "Model zoo"): at these defaults, the single-layer Gaussian VAE of before
    stochastic_layers: int = 1  # > 1: hierarchical VAE with top-down inference, latent_dim dimensions per layer
    posterior: str = "gaussian"  # gaussian | iaf (inverse autoregressive flow on the Gaussian draw)
    prior_components: int = 0  # mog / vampprior: components / pseudo-inputs K (0 = 10 for mog, 500 for vampprior)
    flow_steps: int = 2  # iaf: autoregressive steps
    flow_hidden: int = 0  # iaf: MADE width (0 = 4·latent_dim)
    resnet_blocks: int = 1  # arch resnet: residual blocks per resolution

    def __post_init__(self) -> None:
        self._check_sizes()  # numbers first: integer/finite types, ranges, then the parameter budget
        self.column_kinds = tuple(str(k) for k in self.column_kinds)
        # names: each must be registered (one-line VaekitError listing the known ones)
        LIKELIHOODS.check(self.likelihood)
        ENCODERS.check(self.arch)
        DECODERS.check(self.arch)
        PRIORS.check(self.prior)
        POSTERIORS.check(self.posterior)
        ACTIVATIONS.check(self.activation)
        if self.obs_variance not in OBS_VARIANCES:
            raise VaekitError(f"obs_variance {self.obs_variance!r} is not one of {list(OBS_VARIANCES)}")
        if self.latent_dim < 1:
            raise VaekitError(f"latent_dim must be >= 1, got {self.latent_dim}")
        if not self.logvar_min < self.logvar_max:
            raise VaekitError("logvar_min must be < logvar_max")
        if not self.obs_logvar_min < self.obs_logvar_max:
            raise VaekitError("obs_logvar_min must be < obs_logvar_max")
        # component-specific rules live with the components (e.g. categorical's n_categories, mixed's columns)
        LIKELIHOODS.get(self.likelihood).check_config(self)
        ENCODERS.get(self.arch).check_config(self)
        PRIORS.get(self.prior).check_config(self)
        POSTERIORS.get(self.posterior).check_config(self)

    @classmethod
    def before_data(cls, **settings: Any) -> ModelConfig:
        """The settings checked now, before the data's shape is known: input_shape is a stand-in of the rank the
        architecture takes (its encoder's ``example_shape``) until ``replace(cfg, input_shape=...)`` sets it."""
        arch = settings.get("arch", cls.arch)
        ENCODERS.check(arch)
        return cls(input_shape=ENCODERS.get(arch).example_shape, **settings)

    def _check_sizes(self) -> None:
        """Sizes from an untrusted config.json: integers (no floats/bools) in range, finite floats, and at most
        MAX_PARAMETERS weights estimated from the sizes alone, so nothing is allocated for a hostile config."""
        self.input_shape = _ints(self.input_shape, "input_shape", 1, 8)
        if not self.input_shape:
            raise VaekitError("input_shape must hold at least one size")
        self.hidden = _ints(self.hidden, "hidden", 0, MAX_LAYERS)
        self.channels = _ints(self.channels, "channels", 0, MAX_LAYERS)
        self.column_sizes = _ints(self.column_sizes, "column_sizes", 0, MAX_SIZE)
        self.latent_dim = _int(self.latent_dim, "latent_dim")
        self.n_categories = _int(self.n_categories, "n_categories", lo=0)
        self.n_conditions = _int(self.n_conditions, "n_conditions", lo=0)
        self.stochastic_layers = _int(self.stochastic_layers, "stochastic_layers", hi=MAX_STOCHASTIC_LAYERS)
        self.prior_components = _int(self.prior_components, "prior_components", lo=0, hi=MAX_COMPONENTS)
        self.flow_steps = _int(self.flow_steps, "flow_steps", lo=0, hi=MAX_LAYERS)
        self.flow_hidden = _int(self.flow_hidden, "flow_hidden", lo=0)
        self.resnet_blocks = _int(self.resnet_blocks, "resnet_blocks", lo=0, hi=16)
        for name, lo, hi in (("gaussian_sigma", 0.0, 1e6), ("logvar_min", -MAX_LOGVAR, MAX_LOGVAR),
                             ("logvar_max", -MAX_LOGVAR, MAX_LOGVAR), ("obs_logvar_min", -MAX_LOGVAR, MAX_LOGVAR),
                             ("obs_logvar_max", -MAX_LOGVAR, MAX_LOGVAR)):
            setattr(self, name, _float(getattr(self, name), name, lo, hi, open_lo=name == "gaussian_sigma"))
        if self.arch == "conv" and not self.channels:
            raise VaekitError("arch 'conv' needs at least one entry in channels")
        n, where = parameter_estimate(self)
        if n > MAX_PARAMETERS:
            raise VaekitError(f"model config describes about {n:.3g} parameters, more than the {MAX_PARAMETERS:,} "
                              f"allowed (largest layer: {where})")

    @property
    def data_dim(self) -> int:
        n = 1
        for s in self.input_shape:
            n *= s
        return n

    def to_dict(self) -> dict[str, Any]:
        """All fields, less the model-zoo ones at their defaults (``ZOO_DEFAULTS``)."""
        d = asdict(self)
        for name, default in ZOO_DEFAULTS.items():
            if d[name] == default:
                del d[name]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        return _from_dict(cls, data, "model config")


@dataclass
class TrainConfig:
    """Optimisation: objective, schedule, stopping rule and bookkeeping.

    The defaults are the measured best recipe on binarized MNIST (benchmarks/mnist_nll.py: IWAE k=10, 10-epoch
    KL warm-up, Adam 1e-3 with cosine decay, bf16 autocast where the hardware has it, 250 epochs ≈ 26 min on 2 cores).
    """

    epochs: int = 250
    batch_size: int = 100
    lr: float = 1e-3
    optimizer: str = "adam"  # adam | adamw
    weight_decay: float = 0.0
    schedule: str = "cosine"  # constant | cosine | plateau
    min_lr_ratio: float = 0.05
    objective: str = "iwae"  # elbo | iwae
    iwae_k: int = 10
    beta: float = 1.0
    warmup_epochs: float = 10.0  # linear KL warm-up from 0 to beta
    free_bits: float = 0.0  # nats per latent dimension (Kingma et al. 2016)
    binarize: str = "none"  # none | static | dynamic   (bernoulli only)
    precision: str = "auto"  # auto | fp32 | bf16 (autocast; auto = bf16 where the device multiplies bf16 natively)
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    early_stopping: int = 0  # patience in epochs; 0 = off
    time_limit_min: float = 0.0  # 0 = no limit
    fit_schedule_to_time: bool = True  # with a time limit: the cosine schedule runs over the time, not the epochs
    grad_clip: float = 0.0
    nan_policy: str = "rollback"  # rollback | raise
    seed: int = 0
    val_every: int = 1
    log_every: int = 50
    num_threads: int = 0  # 0 = automatic (OMP_NUM_THREADS, else 1 for small models, all cores for large ones)
    max_steps: int = 0  # a step budget instead of epochs (0 = epochs); 'cosine' then decays per step over it
    steps_per_round: int = 0  # bookkeeping (validation, keep-best, patience, checkpoint) every N steps; 0 = per epoch
    drop_last: bool = False  # skip the last, smaller batch of each pass
    keep_best: bool = True  # end with the weights of the best round (validation metric, else training loss)

    def __post_init__(self) -> None:
        checks = {
            "optimizer": ("adam", "adamw"), "schedule": ("constant", "cosine", "plateau"),
            "objective": OBJECTIVES.names(), "binarize": ("none", "static", "dynamic"),
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
        if self.max_steps < 0 or self.steps_per_round < 0 or self.val_every < 1:
            raise VaekitError("max_steps >= 0, steps_per_round >= 0 (0 = off) and val_every >= 1 are required")
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
