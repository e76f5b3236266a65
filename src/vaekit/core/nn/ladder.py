"""The networks of a hierarchical (ladder) VAE with L stochastic layers z_1 (bottom) … z_L (top), d each.

Inference (bottom-up, deterministic): h_1 = encoder(x), h_{i+1} = act(W_i h_i)  (``BottomUp``).
Generation (top-down): t_i = MLP_i(z_{i+1}), p(z_i | z_{i+1}) = N(μ_p(t_i), σ_p²(t_i))  (``TopDown``).
Posterior of layer i < L: q(z_i | z_{i+1}, x) = N(μ_q, σ_q²) from [h_i, t_i]: bottom-up and top-down features
combined (Ladder VAE, Sønderby et al. 2016; NVAE, Vahdat & Kautz 2020); q(z_L | x) comes from h_L alone.
"""
from __future__ import annotations

from torch import nn

from vaekit.core.nn.blocks import activation


def ladder_parameter_count(layers: int, d: int, width: int) -> int:
    """Weights of BottomUp + TopDown for ``layers`` layers of ``d`` dimensions and features of ``width``."""
    per = (width + 1) * width + (2 * width + 1) * 2 * d + (d + 1) * width + (width + 1) * width + (width + 1) * 2 * d
    return (layers - 1) * per


class BottomUp(nn.Module):
    """h_{i+1} = act(W_i h_i) for the layers above the first, and the posterior heads [h_i, t_i] → (μ_q, raw σ²_q)."""

    def __init__(self, layers: int, d: int, width: int, act: str) -> None:
        super().__init__()
        self.up = nn.ModuleList(nn.Sequential(nn.Linear(width, width), activation(act)) for _ in range(layers - 1))
        self.q_heads = nn.ModuleList(nn.Linear(2 * width, 2 * d) for _ in range(layers - 1))


class TopDown(nn.Module):
    """t_i = MLP_i(z_{i+1}) and the prior heads t_i → (μ_p, raw σ²_p) of p(z_i | z_{i+1}), for i = 1 … L−1."""

    def __init__(self, layers: int, d: int, width: int, act: str) -> None:
        super().__init__()
        self.down = nn.ModuleList(nn.Sequential(nn.Linear(d, width), activation(act), nn.Linear(width, width),
                                                activation(act)) for _ in range(layers - 1))
        self.p_heads = nn.ModuleList(nn.Linear(width, 2 * d) for _ in range(layers - 1))
