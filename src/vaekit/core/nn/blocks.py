"""Building blocks. Encoders map x (N, *input_shape) → h (N, out_dim); decoders map z (N, d) → (N, P, D)."""
from __future__ import annotations

import math

import torch
from torch import nn

from vaekit.core.config import ModelConfig
from vaekit.errors import VaekitError

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU, "softplus": nn.Softplus,
               "silu": nn.SiLU}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise VaekitError(f"activation {name!r} is not one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def mlp(sizes: list[int], act: str, last_act: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or last_act:
            layers.append(activation(act))
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """h = MLP(flatten(x) ⊕ c)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.net = mlp([cfg.data_dim + cfg.n_conditions, *cfg.hidden], cfg.activation, last_act=True)
        self.out_dim = cfg.hidden[-1] if cfg.hidden else cfg.data_dim + cfg.n_conditions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class MLPDecoder(nn.Module):
    """θ = MLP(z ⊕ c), reshaped to (N, P, D): P parameters per data dimension (D = out_dim or the data width)."""

    def __init__(self, cfg: ModelConfig, n_params: int, out_dim: int | None = None) -> None:
        super().__init__()
        self.n_params, self.data_dim = n_params, out_dim or cfg.data_dim
        sizes = [cfg.latent_dim + cfg.n_conditions, *reversed(cfg.hidden), n_params * self.data_dim]
        self.net = mlp(sizes, cfg.activation, last_act=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).unflatten(-1, (self.n_params, self.data_dim))


class ConvEncoder(nn.Module):
    """h = MLP(flatten(conv_stride2^L(x))) for (C, H, W) images of any size."""

    def __init__(self, cfg: ModelConfig) -> None:
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


class ConvDecoder(nn.Module):
    """θ = crop(convT^L(fc(z))) → (N, P, C·H·W)."""

    def __init__(self, cfg: ModelConfig, n_params: int) -> None:
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
        self.c0, self.shape, self.n_params = chans[0], (c, h, w), n_params

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

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.inner(z)
        full = torch.zeros(self.mask.shape, dtype=out.dtype, device=out.device).masked_scatter(self.mask, self.logvar)
        return torch.where(self.mask, full.to(out.dtype), out)


def make_encoder(cfg: ModelConfig) -> nn.Module:
    return ConvEncoder(cfg) if cfg.arch == "conv" else MLPEncoder(cfg)


def make_decoder(cfg: ModelConfig, n_params: int, out_dim: int | None = None) -> nn.Module:
    return ConvDecoder(cfg, n_params) if cfg.arch == "conv" else MLPDecoder(cfg, n_params, out_dim)
