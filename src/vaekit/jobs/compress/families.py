"""Per-pixel coding families for bits-back: integer intervals from the decoder's parameters, batched over lanes.

Each family is built from ``likelihood.coding_params`` of an (a, P, D) batch of decoder outputs and the lane
groups G, and gives ``intervals(x)`` → (c, f) (a, D) for known symbols (encoder) and ``pop(lanes, a, r)`` → the
symbols (G_r, a) of pixel row r = pixels rG … rG + G_r − 1 (decoder; see :class:`~.lanes.Lanes`). All intervals come from the integer CDFs of :mod:`.fixedpoint`: C(0) = 0, C(K) = 2^24, C strictly
increasing, so every slot y ∈ [0, 2^24) falls in exactly one symbol's interval [C(s), C(s+1)).
"""
from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

from vaekit.errors import VaekitError
from vaekit.jobs.compress import fixedpoint as fx
from vaekit.jobs.compress.lanes import Lanes, bsearch

MAX_SOFTMAX = 1 << 14


def to_rows(v: np.ndarray, groups: int) -> np.ndarray:
    """(a, D, …) → (R, G, a, …) contiguous with R = ⌈D/G⌉: pixel rG + g of item l at [r, g, l] (zero padded)."""
    a, D = v.shape[:2]
    R = -(-D // groups)
    pad = np.zeros((a, R * groups) + v.shape[2:], v.dtype)
    pad[:, :D] = v
    return np.ascontiguousarray(np.moveaxis(pad.reshape((a, R, groups) + v.shape[2:]), 0, 2))


def row_groups(D: int, groups: int, r: int) -> int:
    """G_r: the pixels in row r."""
    return min(groups, D - r * groups)


class Family:
    """(c, f) of x under p(x | z̄) for every lane and position."""

    groups = 1

    def intervals(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def pop(self, lanes: Lanes, a: int, r: int) -> np.ndarray:
        raise NotImplementedError


class Bernoulli(Family):
    """C(1) = ⌊σ̃(−l)(2^24 − 2)/2^32⌋ + 1."""

    def __init__(self, groups: int, logits: np.ndarray) -> None:
        self.c1 = fx.bernoulli_c1(logits)
        self.rows, self.D = to_rows(self.c1, groups), logits.shape[1]  # (R, G, a)
        self.groups = groups

    def intervals(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        one = x.astype(bool)
        return np.where(one, self.c1, 0), np.where(one, fx.TOTAL - self.c1, self.c1)

    def pop(self, lanes: Lanes, a: int, r: int) -> np.ndarray:
        g = row_groups(self.D, self.groups, r)
        y, c1 = lanes.slots(a, g), self.rows[r, :g]
        one = y >= c1
        lanes.pop(a, y, np.where(one, c1, 0), np.where(one, fx.TOTAL - c1, c1), g)
        return one


class Softmax(Family):
    """C(k) = ⌊S_k(2^24 − K)/S_K⌋ + k over table weights ẽ_j = 2^24·exp(−(max l − l_j))."""

    def __init__(self, groups: int, logits: np.ndarray) -> None:
        if logits.shape[-1] > MAX_SOFTMAX:
            raise VaekitError(f"bits-back coding supports up to {MAX_SOFTMAX} categories, got {logits.shape[-1]}")
        self.cdf = fx.softmax_cdf(logits)  # (a, D, K+1)
        self.rows, self.D, self.groups = to_rows(self.cdf, groups), logits.shape[1], groups  # (R, G, a, K+1)

    def intervals(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xi = x.astype(np.int64)[..., None]
        c = np.take_along_axis(self.cdf, xi, -1)[..., 0]
        return c, np.take_along_axis(self.cdf, xi + 1, -1)[..., 0] - c

    def pop(self, lanes: Lanes, a: int, r: int) -> np.ndarray:
        g = row_groups(self.D, self.groups, r)
        y, cdf = lanes.slots(a, g), self.rows[r, :g]
        s = (cdf[..., 1:-1] <= y[..., None]).sum(-1)
        c = np.take_along_axis(cdf, s[..., None], -1)[..., 0]
        lanes.pop(a, y, c, np.take_along_axis(cdf, s[..., None] + 1, -1)[..., 0] - c, g)
        return s


class Logistic256(Family):
    """C(s) = ⌊σ̃((b_s − μ)/s)(2^24 − 256)/2^32⌋ + s at the 8-bit bin edges b_s = (2s − 256)/255."""

    def __init__(self, groups: int, mu: np.ndarray, log_s: np.ndarray) -> None:
        self.m, self.w = fx.logistic_params(mu, log_s)
        self.D, self.groups = mu.shape[1], groups
        self.mt, self.wt = to_rows(self.m, groups), np.maximum(to_rows(self.w, groups), 1)  # (R, G, a); pad w ≥ 1
        # float guess of the symbol: s ≈ (255·b + 256)/2 with b = μ + s·logit(p), for the decoder's first try
        self.g0 = (255.0 * self.mt * 2.0 ** -fx.X_BITS + 256.0) * 0.5 - 1.0
        self.g1 = 127.5 * 2.0 ** 16 / self.wt

    def intervals(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xi = x.astype(np.int64)
        c = fx.logistic_cdf(xi, self.m, self.w)
        return c, fx.logistic_cdf(xi + 1, self.m, self.w) - c

    def pop(self, lanes: Lanes, a: int, r: int) -> np.ndarray:
        """A float guess s₀ from the logistic's inverse, checked exactly on s₀−1 … s₀+1; binary search otherwise."""
        g = row_groups(self.D, self.groups, r)
        y, m, w = lanes.slots(a, g), self.mt[r, :g], self.wt[r, :g]
        guess = self.g0[r, :g] + self.g1[r, :g] * np.log((y + 0.5) / (fx.TOTAL - 0.5 - y))
        lo = np.minimum(np.maximum(np.floor(guess), 0), 253).astype(np.int64)  # candidates lo … lo+3
        C = fx.logistic_cdf(lo[..., None] + _STEPS, m[..., None], w[..., None])
        k = (C <= y[..., None]).sum(-1)  # C(lo + k − 1) ≤ y < C(lo + k) when 1 ≤ k ≤ 3
        j = np.minimum(np.maximum(k - 1, 0), 2)[..., None]
        c = np.take_along_axis(C, j, -1)[..., 0]
        s, f = lo + j[..., 0], np.take_along_axis(C, j + 1, -1)[..., 0] - c
        miss = np.flatnonzero((k == 0) | (k == 4))
        if miss.size:
            mm, wm = m.reshape(-1)[miss], w.reshape(-1)[miss]
            sf, cf, ff = s.reshape(-1), c.reshape(-1), f.reshape(-1)
            sf[miss], cf[miss], ff[miss] = bsearch(lambda t: fx.logistic_cdf(t, mm, wm), y.reshape(-1)[miss], 256)
        lanes.pop(a, y, c, f, g)
        return s


_STEPS = np.arange(4)


def posterior_pop(lanes: Lanes, a: int, m: np.ndarray, w: np.ndarray, bits: int) -> np.ndarray:
    """Pop one latent bucket per lane from Q (the encoder's bits-back draw): a float guess from z = μ + σΦ⁻¹(p),
    checked exactly on i₀−1 … i₀+1, binary search where it misses."""
    y, n = lanes.slots(a), 1 << bits  # the slots' first lanes
    z = m * 2.0 ** -fx.X_BITS + ndtri((y + 0.5) * (1.0 / fx.TOTAL)) / (w * 2.0 ** -16)
    i0 = np.clip(np.floor(ndtr(z) * n), 0, n - 1).astype(np.int64)
    cand = np.clip(i0[:, None] + np.arange(-1, 3), 0, n)
    C = fx.gauss_cdf(cand, m[:, None], w[:, None], bits)
    ok = (C[:, :3] <= y[:, None]) & (y[:, None] < C[:, 1:])
    j = ok.argmax(1)
    rows = np.arange(a)
    s, c, f = cand[rows, j], C[rows, j], C[rows, j + 1] - C[rows, j]
    miss = np.flatnonzero(~ok.any(1))
    if miss.size:
        mm, wm = m[miss], w[miss]
        s[miss], c[miss], f[miss] = bsearch(lambda t: fx.gauss_cdf(t, mm, wm, bits), y[miss], n)
    lanes.pop(a, y, c, f)
    return s


FAMILIES: dict[str, type[Family]] = {"bernoulli": Bernoulli, "softmax": Softmax, "logistic256": Logistic256}
