"""ResNet convolutional encoder/decoder for (C, H, W) images (arch ``resnet``).

Encoder: per entry of ``channels``, a stride-2 4×4 convolution then ``resnet_blocks`` residual blocks
y = x + conv3×3(act(conv3×3(act(x)))); flatten, fc to ``hidden[-1]``. The decoder mirrors it with transposed
stride-2 convolutions and ends in a 3×3 convolution to P·C maps, cropped to H×W.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from vaekit.core.nn.blocks import DECODERS, ENCODERS, ConvDecoder, Decoder, Encoder, activation, conv_widest
from vaekit.errors import VaekitError


class ResBlock(nn.Module):
    """y = x + conv3×3(act(conv3×3(act(x)))) (pre-activation; the second convolution starts at zero: y = x)."""

    def __init__(self, ch: int, act: str) -> None:
        super().__init__()
        self.net = nn.Sequential(activation(act), nn.Conv2d(ch, ch, 3, padding=1), activation(act),
                                 nn.Conv2d(ch, ch, 3, padding=1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


def _check(cfg: Any) -> None:
    if len(cfg.input_shape) != 3:
        raise VaekitError(f"arch 'resnet' needs input_shape (C, H, W), got {tuple(cfg.input_shape)}")
    if not cfg.channels:
        raise VaekitError("arch 'resnet' needs at least one entry in channels")
    blocks = getattr(cfg, "resnet_blocks", 1)
    if isinstance(blocks, bool) or not isinstance(blocks, int) or not 0 <= blocks <= 16:
        raise VaekitError(f"resnet_blocks must be an integer in 0..16, got {blocks!r}")


def resnet_parameter_count(cfg: Any, n_params: int) -> int:
    """Weights beyond those of arch conv with the same sizes: the residual blocks of encoder and decoder and the
    decoder's last 3×3 convolution to ``n_params`` maps per channel."""
    blocks = getattr(cfg, "resnet_blocks", 1)
    per_level = sum(2 * blocks * 2 * (9 * ch * ch + ch) for ch in cfg.channels)
    c = cfg.input_shape[0] if len(cfg.input_shape) == 3 else 1
    ch0 = cfg.channels[0] if cfg.channels else 1
    return per_level + (9 * ch0 + 1) * c * n_params + 16 * ch0 * ch0


@ENCODERS.register("resnet")
class ResNetEncoder(Encoder):
    """h = act(fc(flatten(resblocks ∘ conv_stride2)^L(x) ⊕ c))."""

    example_shape = (1, 8, 8)

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        _check(cfg)

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        c, h, w = cfg.input_shape
        layers: list[nn.Module] = []
        for ch in cfg.channels:
            layers.append(nn.Conv2d(c, ch, 4, stride=2, padding=1))
            layers += [ResBlock(ch, cfg.activation) for _ in range(cfg.resnet_blocks)]
            c, h, w = ch, h // 2, w // 2
        if h < 1 or w < 1:
            raise VaekitError(f"input {cfg.input_shape} is too small for {len(cfg.channels)} stride-2 layers")
        self.conv = nn.Sequential(*layers, activation(cfg.activation))
        hidden = cfg.hidden[-1] if cfg.hidden else 256
        self.fc = nn.Sequential(nn.Linear(c * h * w + cfg.n_conditions, hidden), activation(cfg.activation))
        self.input_shape, self.n_conditions, self.out_dim = tuple(cfg.input_shape), cfg.n_conditions, hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_cond = self.n_conditions
        data, cond = (x[:, :-n_cond], x[:, -n_cond:]) if n_cond else (x, None)
        h = self.conv(data.reshape(-1, *self.input_shape)).flatten(1)
        return self.fc(h if cond is None else torch.cat([h, cond], 1))


@DECODERS.register("resnet")
class ResNetDecoder(ConvDecoder):
    """θ = crop(conv3×3((resblocks ∘ convT_stride2)^L(fc(z ⊕ c)))) → (…, N, P, C·H·W); crop, reshape and the widest
    activation as :class:`ConvDecoder`, with residual blocks in the upsampling path."""

    def __init__(self, cfg: Any, n_params: int) -> None:
        Decoder.__init__(self)  # not ConvDecoder's layers: this decoder builds its own
        c, h, w = cfg.input_shape
        levels = len(cfg.channels)
        self.h0, self.w0 = math.ceil(h / 2**levels), math.ceil(w / 2**levels)
        chans = list(reversed(cfg.channels))
        hidden = cfg.hidden[-1] if cfg.hidden else 256
        act = cfg.activation
        self.fc = nn.Sequential(nn.Linear(cfg.latent_dim + cfg.n_conditions, hidden), activation(act),
                                nn.Linear(hidden, chans[0] * self.h0 * self.w0))
        layers: list[nn.Module] = []
        for i, ch in enumerate(chans):
            layers += [ResBlock(ch, act) for _ in range(cfg.resnet_blocks)]
            out = chans[i + 1] if i + 1 < levels else chans[-1]
            layers.append(nn.ConvTranspose2d(ch, out, 4, stride=2, padding=1))
        layers += [activation(act), nn.Conv2d(chans[-1], c * n_params, 3, padding=1)]
        self.net = nn.Sequential(*layers)
        self.c0, self.shape, self.n_params, self.data_dim = chans[0], (c, h, w), n_params, c * h * w
        self._widest = conv_widest(cfg, n_params)

    @property
    def deconv(self) -> nn.Module:  # type: ignore[override]
        """The upsampling path ConvDecoder.forward runs (stored as ``net``: the saved weights' key)."""
        return self.net
