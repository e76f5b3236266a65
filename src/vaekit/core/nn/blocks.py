"""Building blocks. Encoders map x (N, *input_shape) → h (N, out_dim); decoders map z (N, d) → (N, P, D).

An architecture is an encoder registered in ``ENCODERS`` and a decoder registered in ``DECODERS`` under the same
``arch`` name; activations are registered in ``ACTIVATIONS``. ``cfg`` is a ModelConfig (duck-typed here: the config
imports this module to validate names, so this module does not import the config).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from vaekit.errors import VaekitError
from vaekit.registry import Registry

ACTIVATIONS: Registry[type[nn.Module]] = Registry("activation")
ENCODERS: Registry[type[Encoder]] = Registry("arch")
DECODERS: Registry[type[Decoder]] = Registry("decoder for arch")

for _name, _act in {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU, "softplus": nn.Softplus,
                    "silu": nn.SiLU}.items():
    ACTIVATIONS.register(_name)(_act)


def activation(name: str) -> nn.Module:
    return ACTIVATIONS.get(name)()


def mlp(sizes: list[int], act: str, last_act: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or last_act:
            layers.append(activation(act))
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """x (N, *input_shape) → h (N, out_dim); subclasses set ``out_dim`` and register with ``@ENCODERS.register``."""

    out_dim: int
    example_shape: tuple[int, ...] = (1,)  # a data shape of the rank this architecture takes (configs made before the data)

    @classmethod
    def from_config(cls, cfg: Any) -> Encoder:
        return cls(cfg)

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        """Refuse (one-line VaekitError) a ModelConfig this architecture cannot serve."""


class Decoder(nn.Module):
    """z (…, N, d) → (…, N, P, D); subclasses set ``n_params``/``data_dim`` and register with ``@DECODERS.register``."""

    n_params: int
    data_dim: int

    @property
    def widest(self) -> int:
        """Values per row of the widest activation (sizes the importance sampler's memory chunks): here the output
        n_params·D or a hidden layer; convolutional decoders add their feature maps."""
        hidden = [m.out_features for m in self.modules() if isinstance(m, nn.Linear)]
        return max([self.n_params * self.data_dim, *hidden])

    @classmethod
    def from_config(cls, cfg: Any, n_params: int, out_dim: int | None = None) -> Decoder:
        """P = ``n_params`` outputs per data dimension; ``out_dim`` is the decoder width D when it is not the data's."""
        return cls(cfg, n_params, out_dim)


@ENCODERS.register("mlp")
class MLPEncoder(Encoder):
    """h = MLP(flatten(x) ⊕ c)."""

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        self.net = mlp([cfg.data_dim + cfg.n_conditions, *cfg.hidden], cfg.activation, last_act=True)
        self.out_dim = cfg.hidden[-1] if cfg.hidden else cfg.data_dim + cfg.n_conditions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


@DECODERS.register("mlp")
class MLPDecoder(Decoder):
    """θ = MLP(z ⊕ c), reshaped to (N, P, D): P parameters per data dimension (D = out_dim or the data width)."""

    def __init__(self, cfg: Any, n_params: int, out_dim: int | None = None) -> None:
        super().__init__()
        self.n_params, self.data_dim = n_params, out_dim or cfg.data_dim
        sizes = [cfg.latent_dim + cfg.n_conditions, *reversed(cfg.hidden), n_params * self.data_dim]
        self.net = mlp(sizes, cfg.activation, last_act=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).unflatten(-1, (self.n_params, self.data_dim))


@ENCODERS.register("conv")
class ConvEncoder(Encoder):
    """h = MLP(flatten(conv_stride2^L(x))) for (C, H, W) images of any size."""

    example_shape = (1, 8, 8)

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        if len(cfg.input_shape) != 3:
            raise VaekitError(f"arch 'conv' needs input_shape (C, H, W), got {tuple(cfg.input_shape)}")

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        c, h, w = cfg.input_shape
        layers: list[nn.Module] = []
        for ch in cfg.channels:
            layers += [nn.Conv2d(c, ch, 4, stride=2, padding=1), activation(cfg.activation)]
            c = ch
            h, w = math.floor(h / 2), math.floor(w / 2)
        if h < 1 or w < 1:
            raise VaekitError(f"input {cfg.input_shape} is too small for {len(cfg.channels)} stride-2 layers")
        self.conv = nn.Sequential(*layers)
        hidden = cfg.hidden[-1] if cfg.hidden else 256
        self.fc = nn.Sequential(nn.Linear(c * h * w + cfg.n_conditions, hidden), activation(cfg.activation))
        self.input_shape, self.n_conditions, self.out_dim = cfg.input_shape, cfg.n_conditions, hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_cond = self.n_conditions
        data, cond = (x[:, :-n_cond], x[:, -n_cond:]) if n_cond else (x, None)
        h = self.conv(data.reshape(-1, *self.input_shape)).flatten(1)
        return self.fc(h if cond is None else torch.cat([h, cond], 1))


def conv_widest(cfg: Any, n_params: int) -> int:
    """Widest activation per row of a convolutional decoder: a hidden layer, the output, or the first transposed
    convolution's feature map (max channels × ⌈H/2⌉ × ⌈W/2⌉)."""
    _, h, w = cfg.input_shape
    return max(max(cfg.hidden, default=1), n_params * math.prod(cfg.input_shape),
               max(cfg.channels, default=1) * math.ceil(h / 2) * math.ceil(w / 2))


@DECODERS.register("conv")
class ConvDecoder(Decoder):
    """θ = crop(convT^L(fc(z))) → (N, P, C·H·W)."""

    @classmethod
    def from_config(cls, cfg: Any, n_params: int, out_dim: int | None = None) -> Decoder:
        return cls(cfg, n_params)  # always the image's C·H·W outputs

    def __init__(self, cfg: Any, n_params: int) -> None:
        super().__init__()
        c, h, w = cfg.input_shape
        levels = len(cfg.channels)
        self.h0, self.w0 = math.ceil(h / 2**levels), math.ceil(w / 2**levels)
        chans = list(reversed(cfg.channels))
        hidden = cfg.hidden[-1] if cfg.hidden else 256
        self.fc = nn.Sequential(nn.Linear(cfg.latent_dim + cfg.n_conditions, hidden), activation(cfg.activation),
                                nn.Linear(hidden, chans[0] * self.h0 * self.w0), activation(cfg.activation))
        layers: list[nn.Module] = []
        for i, ch in enumerate(chans):
            out = chans[i + 1] if i + 1 < len(chans) else c * n_params
            layers.append(nn.ConvTranspose2d(ch, out, 4, stride=2, padding=1))
            if i + 1 < len(chans):
                layers.append(activation(cfg.activation))
        self.deconv = nn.Sequential(*layers)
        self.c0, self.shape, self.n_params, self.data_dim = chans[0], (c, h, w), n_params, c * h * w
        self._widest = conv_widest(cfg, n_params)

    @property
    def widest(self) -> int:
        return self._widest

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-1]
        y = self.fc(z.reshape(-1, z.shape[-1])).view(-1, self.c0, self.h0, self.w0)
        c, h, w = self.shape
        y = self.deconv(y)[:, :, :h, :w]  # (M, P·C, H, W)
        y = y.reshape(-1, self.n_params, c * h * w)
        return y.reshape(*lead, self.n_params, c * h * w)


class ColumnVariance(nn.Module):
    """θ(z) with the log-variance entries replaced by free parameters: σ² per column, independent of z."""

    def __init__(self, decoder: nn.Module, mask: torch.Tensor) -> None:
        super().__init__()
        self.inner = decoder
        self.register_buffer("mask", mask, persistent=False)
        self.logvar = nn.Parameter(torch.zeros(int(mask.sum())))
        self.n_params, self.data_dim = decoder.n_params, decoder.data_dim

    @property
    def widest(self) -> int:
        return int(self.inner.widest)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.inner(z)
        full = torch.zeros(self.mask.shape, dtype=out.dtype, device=out.device).masked_scatter(self.mask, self.logvar)
        return torch.where(self.mask, full.to(out.dtype), out)


def make_encoder(cfg: Any) -> Encoder:
    """The encoder registered for ``cfg.arch``."""
    return ENCODERS.get(cfg.arch).from_config(cfg)


def make_decoder(cfg: Any, n_params: int, out_dim: int | None = None) -> Decoder:
    """The decoder registered for ``cfg.arch``, with ``n_params`` outputs per data dimension."""
    return DECODERS.get(cfg.arch).from_config(cfg, n_params, out_dim)
