"""Bucket grids of the lower layers of a hierarchical VAE for bits-back coding: z = c + 2^e·u, u on N(0, 1)'s buckets.

The top layer's buckets have equal mass under its N(0, I) prior. A lower layer z_i has no fixed marginal: in a
trained ladder VAE its values often sit far outside N(0, 1)'s range (posterior means of 10 and more, where the
last of 2^12 buckets already starts at 3.5), and coding them on the top layer's buckets costs tens of percent over
the −ELBO. So each lower-layer dimension gets a shift c (on the 2^-8 grid) and a power-of-two scale 2^e (e ∈ 0..8)
fitted to the data being coded; the latent is u = (z − c)·2^-e on the standard buckets, and the decoder sees
z̄ = c + 2^e·ū (on the 2^-16 activation grid, exact in float64). Gaussians map exactly enough to stay
deterministic: μ_u = (μ − c)·2^-e is exact, λ_u = λ − 2e·ln 2 is one IEEE product and one difference
(correctly rounded on every IEEE machine). c and e are computed with integer arithmetic from the exact networks'
posterior means (top-down at the means) and written to the file's header, so the decoder reads them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from vaekit.errors import CorruptFileError

SHIFT_BITS = 8  # c on the 2^-8 grid
SHIFT_MAX = 1 << 16  # |c| ≤ 256
EXP_MAX = 8
LN2 = math.log(2.0)
_CLIP = 256.0  # posterior means clipped for the statistics (integer sums cannot overflow up to 10^8 items)


@dataclass(frozen=True)
class LayerGrids:
    """Shift (integer, units 2^-8) and scale exponent of every lower layer (i = 0 … L−2) and dimension."""

    shift: np.ndarray  # (L−1, d) int64
    exp: np.ndarray  # (L−1, d) int64

    @classmethod
    def none(cls, d: int) -> LayerGrids:
        return cls(np.zeros((0, d), np.int64), np.zeros((0, d), np.int64))

    @classmethod
    def fit(cls, means: list[np.ndarray], sigma_w: list[np.ndarray]) -> LayerGrids:
        """From each lower layer's posterior means (n, d) and integer inverse scales w = 2^16/σ (n, d):
        c = round(mean μ), e = the largest in 0..8 with Var ≥ 4^e/2, Var = var(μ) + mean σ²."""
        shifts, exps = [], []
        for mu, w in zip(means, sigma_w):
            n = max(len(mu), 1)
            q = np.rint(np.clip(mu, -_CLIP, _CLIP) * 2.0 ** SHIFT_BITS).astype(np.int64)
            s1, s2 = q.sum(0), (q * q).sum(0)
            sig2 = ((1 << 48) // np.maximum(w, 1) ** 2).sum(0)  # σ² in units 2^-16, floored
            shift, exp = [], []
            for k in range(q.shape[1]):
                mean = Fraction(int(s1[k]), n)
                var = (Fraction(int(s2[k]), n) - mean ** 2 + Fraction(int(sig2[k]), n)) / (1 << 16)
                shift.append(max(-SHIFT_MAX, min(SHIFT_MAX, round(mean))))
                exp.append(next((e for e in range(EXP_MAX, 0, -1) if var >= Fraction(4 ** e, 2)), 0))
            shifts.append(shift)
            exps.append(exp)
        d = means[0].shape[1] if means else 0
        return cls(np.array(shifts, np.int64).reshape(-1, d), np.array(exps, np.int64).reshape(-1, d))

    def z(self, layer: int, u: np.ndarray) -> np.ndarray:
        """z̄ = c + 2^e·ū of lower layer ``layer`` for bucket centres ū (a, d); the top layer (no grid) is ū."""
        if layer >= len(self.shift):
            return u
        return self.shift[layer] * 2.0 ** -SHIFT_BITS + u * 2.0 ** self.exp[layer]

    def to_u(self, layer: int, mu: np.ndarray, logvar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A Gaussian N(μ, e^λ) over z of lower layer ``layer`` as one over u: ((μ − c)·2^-e, λ − 2e·ln 2)."""
        if layer >= len(self.shift):
            return mu, logvar
        e = self.exp[layer]
        return (mu - self.shift[layer] * 2.0 ** -SHIFT_BITS) * 2.0 ** -e, logvar - (2 * e) * LN2

    def to_meta(self) -> dict[str, Any]:
        if not len(self.shift):
            return {}
        return {"grid_shift": self.shift.reshape(-1).tolist(), "grid_exp": self.exp.reshape(-1).tolist()}

    @classmethod
    def from_meta(cls, meta: dict[str, Any], layers: int, d: int, source: str) -> LayerGrids:
        """The grids a header declares, checked: (L−1)·d integers each, |c| ≤ 2^16, e ∈ 0..8."""
        if layers <= 1:
            return cls.none(d)
        shift, exp = meta.get("grid_shift"), meta.get("grid_exp")
        size = (layers - 1) * d
        ok = (isinstance(shift, list) and isinstance(exp, list) and len(shift) == len(exp) == size
              and all(type(v) is int and abs(v) <= SHIFT_MAX for v in shift)
              and all(type(v) is int and 0 <= v <= EXP_MAX for v in exp))
        if not ok:
            raise CorruptFileError(f"{source}: corrupt bits-back header (latent grids of the lower layers)")
        return cls(np.array(shift, np.int64).reshape(layers - 1, d), np.array(exp, np.int64).reshape(layers - 1, d))
