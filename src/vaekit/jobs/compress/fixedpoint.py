"""Machine-independent arithmetic for bits-back coding: correctly rounded functions, integer tables, integer CDFs.

Why tables cannot simply be built from float network outputs: a float computed with a different summation order
(thread count, batch size, BLAS, GPU) differs in its last bits, and rounding it to *any* grid flips the rounded
value with probability ≈ 2·error/grid per value — with 10⁷ values per file some flip, and a single flip desyncs the
decoder. So every step from the weights to the integer tables is made exact instead:

* **Exact sums.** Weights are rounded to 2^-16, biases to 2^-32 and every activation to 2^-16, so each product is
  a multiple of 2^-32; while Σ|w·a| < 2^21 every partial sum is exactly representable in float64, hence a matrix
  product gives the same bits in *any* summation order, on any IEEE machine, CPU or GPU (see :mod:`.exactnet`).
* **Correctly rounded elementary functions.** tanh, exp, σ, Φ, … are evaluated in float64 and rounded to their
  grid: r = round(f(x)·2^g). When the float value lies within 2^-20 + |f·2^g|·2^-44 grid units of a rounding
  midpoint (probability ≈ 10⁻⁶; libm errors are < 4 ulp ≈ |f·2^g|·2^-50) it is recomputed in 80-digit ``decimal``
  arithmetic, which is specified exactly. So r is the *correctly rounded* value, a function of x alone.
* **IEEE basic operations** (+ − × ÷, comparisons, rint) are correctly rounded on every IEEE-754 platform, so they
  need nothing special. Everything after the network's outputs is integer arithmetic on the tables below.

Integer CDFs (P = 24 bits, TOTAL = 2^24): for a K-symbol distribution with CDF F, C(0) = 0, C(K) = TOTAL and
C(s) = ⌊F̃(s)·(TOTAL − K) / 2^32⌋ + s, where F̃ = 2^32·F read from an integer table by integer linear
interpolation; every symbol gets a frequency ≥ 1 and C is strictly increasing.

Residual risk: an elementary-function implementation erring by more than the margin (≈ 64 ulp), non-IEEE
arithmetic (x87 extended precision, flush-to-zero of subnormals; none arise in the ranges used), or a conv
algorithm that is not a sum of products (FFT/Winograd); the file's data digest turns any of these into a loud
error, never silent wrong data. The tables' digests are pinned by tests/jobs/compress/test_golden.py.
"""
from __future__ import annotations

import functools
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from typing import Callable

import numpy as np
import torch
from scipy.special import expit, ndtr, ndtri

P = 24
TOTAL = 1 << P
TAB_BITS, FRAC_BITS = 10, 16  # tables on a 2^-10 grid of u, interpolated with 16 fractional bits
U_SHIFT = TAB_BITS + FRAC_BITS  # u in fixed point 2^-26
X_BITS = 20  # locations (μ, bucket edges, bin boundaries) in fixed point 2^-20
SIG_RANGE, PHI_RANGE = 24, 10  # σ table on [−24, 24], Φ table on [−10, 10] (beyond: 0 or 1 at 2^-32)
LS_MIN, LS_MAX, LS_BITS = -7.0, 7.0, 8  # logistic log-scale grid (vaekit floors log s at −7)
LV_MAX, LV_BITS = 24.0, 10  # posterior log-variance grid on [−24, 24]
MU_MAX, LOC_MAX = 16.0, 16.0  # |posterior μ| and |logistic μ| clipped for coding
EXP_RANGE, EXP_BITS = 30, 10  # softmax: exp(−t), t ∈ [0, 30] on a 2^-10 grid, values in 2^-24
_TOL_ABS, _TOL_REL = 2.0 ** -20, 2.0 ** -44
_PI = Decimal("3.14159265358979323846264338327950288419716939937510582097494459")

Ref = Callable[[Decimal], Decimal]


# --- correctly rounded elementary functions -----------------------------------------------------------------------
def _d_exp(x: Decimal) -> Decimal:
    return x.exp()


def _d_sigmoid(x: Decimal) -> Decimal:
    return 1 / (1 + (-x).exp())


def _d_tanh(x: Decimal) -> Decimal:
    t = (-2 * abs(x)).exp()
    return (1 - t) / (1 + t) * (1 if x >= 0 else -1)


def _d_elu(x: Decimal) -> Decimal:
    return x if x > 0 else x.exp() - 1


def _d_softplus(x: Decimal) -> Decimal:
    return x + (1 + (-x).exp()).ln() if x > 0 else (1 + x.exp()).ln()


def _d_silu(x: Decimal) -> Decimal:
    return x * _d_sigmoid(x)


def _d_phi(x: Decimal) -> Decimal:
    """Φ(x) = ½ + φ(x)·Σ_n x^{2n+1}/(2n+1)!! (all terms positive; 80 digits absorb the cancellation for x < 0)."""
    if x > 12:
        return 1 - _d_phi(-x)
    if x < -12:  # Φ(x) < 2^-110: far below every grid used here
        return Decimal(0)
    term, total, n = x, x, 0
    eps = Decimal(10) ** -75
    while abs(term) > eps * abs(total) or n < 5:
        n += 1
        term = term * x * x / (2 * n + 1)
        total += term
    pdf = (-(x * x) / 2).exp() / (2 * _PI).sqrt()
    return Decimal("0.5") + pdf * total


def _d_gelu(x: Decimal) -> Decimal:
    return x * _d_phi(x)


def _d_ndtri(p: Decimal) -> Decimal:
    """Φ⁻¹(p) by Newton's method from the float value (quadratic convergence: 4 steps reach 10⁻⁶⁰)."""
    x = Decimal(float(ndtri(float(p))))
    two_pi = 2 * _PI
    for _ in range(5):
        pdf = (-(x * x) / 2).exp() / two_pi.sqrt()
        x -= (_d_phi(x) - p) / pdf
    return x


def _ref_round(ref: Ref, x: float, bits: int) -> int:
    with localcontext() as ctx:
        ctx.prec = 80
        v = ref(Decimal(float(x))) * (Decimal(2) ** bits)
        return int(v.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _near_midpoint(s: np.ndarray) -> np.ndarray:
    return np.abs(np.abs(s - np.floor(s)) - 0.5) < _TOL_ABS + np.abs(s) * _TOL_REL


def round_correctly(approx: np.ndarray, x: np.ndarray, ref: Ref, bits: int) -> np.ndarray:
    """round(f(x)·2^bits) as int64, exactly: the float ``approx`` ≈ f(x) decides unless it is near a midpoint."""
    s = np.asarray(approx, dtype=np.float64) * (2.0 ** bits)
    r = np.rint(s)
    near = np.flatnonzero(_near_midpoint(s))
    flat_x, flat_r = np.asarray(x, dtype=np.float64).reshape(-1), r.reshape(-1)
    for i in near:
        flat_r[i] = _ref_round(ref, float(flat_x[i]), bits)
    return flat_r.reshape(s.shape).astype(np.int64)


def round_correctly_torch(approx: torch.Tensor, x: torch.Tensor, ref: Ref, bits: int) -> torch.Tensor:
    """:func:`round_correctly` on float64 tensors (any device) → float64 values on the 2^-bits grid (the margin
    uses max|s| for the relative part: a few more values go to the exact path, none fewer)."""
    s = approx * (2.0 ** bits)
    r = torch.round(s)  # half to even, like np.rint
    if s.numel() == 0:
        return r
    lo, hi = torch.aminmax(s)
    margin = 0.5 - _TOL_ABS - max(-float(lo), float(hi)) * _TOL_REL
    near = s.sub_(r).abs_().gt_(margin)  # |s − r| > margin, in s's memory (one buffer fewer on large batches)
    if bool(near.any()):
        idx = torch.nonzero(near.reshape(-1)).reshape(-1)
        xs = x.reshape(-1)[idx].cpu().tolist()
        fixed = torch.tensor([float(_ref_round(ref, v, bits)) for v in xs], dtype=r.dtype, device=r.device)
        r = r.reshape(-1).index_copy(0, idx, fixed).reshape(r.shape)
    return r.mul_(2.0 ** -bits)


ACTIVATIONS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], Ref]] = {
    "tanh": (torch.tanh, _d_tanh),
    "relu": (torch.relu, lambda x: max(x, Decimal(0))),
    "elu": (torch.nn.functional.elu, _d_elu),
    "softplus": (lambda t: torch.where(t > 0, t + torch.log1p(torch.exp(-t)), torch.log1p(torch.exp(t))),
                 _d_softplus),
    "silu": (torch.nn.functional.silu, _d_silu),
    "gelu": (lambda t: t * torch.special.ndtr(t), _d_gelu),
}


def activation(name: str, x: torch.Tensor, bits: int) -> torch.Tensor:
    """act(x) correctly rounded to the 2^-bits grid (x float64)."""
    fn, ref = ACTIVATIONS[name]
    return round_correctly_torch(fn(x), x, ref, bits)


def softplus(x: torch.Tensor, bits: int) -> torch.Tensor:
    """log(1 + e^x) correctly rounded to 2^-bits."""
    return activation("softplus", x, bits)


# --- integer tables -------------------------------------------------------------------------------------------------
def _grid(lo: float, hi: float, bits: int) -> np.ndarray:
    return np.arange(int(lo * 2 ** bits), int(hi * 2 ** bits) + 1, dtype=np.float64) * 2.0 ** -bits


@functools.lru_cache(maxsize=None)
def sigmoid_table() -> np.ndarray:
    """round(2^32·σ(j/2^10)), j/2^10 ∈ [−24, 24]."""
    u = _grid(-SIG_RANGE, SIG_RANGE, TAB_BITS)
    return round_correctly(expit(u), u, _d_sigmoid, 32)


@functools.lru_cache(maxsize=None)
def phi_table() -> np.ndarray:
    """round(2^32·Φ(j/2^10)), j/2^10 ∈ [−10, 10]."""
    u = _grid(-PHI_RANGE, PHI_RANGE, TAB_BITS)
    return round_correctly(ndtr(u), u, _d_phi, 32)


@functools.lru_cache(maxsize=None)
def inv_scale_table() -> np.ndarray:
    """round(2^16·exp(−ℓ)) for the logistic log-scale ℓ = LS_MIN + v/2^8."""
    ls = _grid(LS_MIN, LS_MAX, LS_BITS)
    return round_correctly(np.exp(-ls), -ls, _d_exp, 16)


@functools.lru_cache(maxsize=None)
def inv_sigma_table() -> np.ndarray:
    """round(2^16·exp(−λ/2)) for the posterior log-variance λ = −24 + v/2^10."""
    lv = _grid(-LV_MAX, LV_MAX, LV_BITS)
    return round_correctly(np.exp(-lv / 2), -lv / 2, _d_exp, 16)


@functools.lru_cache(maxsize=None)
def exp_table() -> np.ndarray:
    """round(2^24·exp(−j/2^10)), j/2^10 ∈ [0, 30] (softmax weights)."""
    t = _grid(0, EXP_RANGE, EXP_BITS)
    return round_correctly(np.exp(-t), -t, _d_exp, 24)


@functools.lru_cache(maxsize=None)
def bucket_edges(bits: int) -> np.ndarray:
    """E[i] = round(2^20·Φ⁻¹(i/2^b)) for i = 1..2^b − 1 (E[0], E[2^b] unused: C = 0 and TOTAL there)."""
    n = 1 << bits
    p = np.arange(1, n) / n
    out = np.zeros(n + 1, dtype=np.int64)
    out[1:n] = round_correctly(ndtri(p), p, _d_ndtri, X_BITS)
    return out


@functools.lru_cache(maxsize=None)
def bucket_centres(bits: int) -> np.ndarray:
    """z̄_i = round(2^16·Φ⁻¹((i + ½)/2^b))/2^16: the decoder's input for bucket i (on the activation grid)."""
    n = 1 << bits
    p = (np.arange(n) + 0.5) / n
    return round_correctly(ndtri(p), p, _d_ndtri, 16).astype(np.float64) * 2.0 ** -16


@functools.lru_cache(maxsize=None)
def logistic_boundaries() -> np.ndarray:
    """B[s] = round(2^20·(2s − 256)/255), the bin edge between 8-bit symbols s−1 and s (exact rationals); B[0] =
    −2^36 and B[256] = 2^36 stand for ∓∞ (u beyond the σ table for any scale, so C(0) = 0, C(256) = TOTAL)."""
    b = [round(Fraction((2 * s - 256) << X_BITS, 255)) for s in range(257)]
    b[0], b[256] = -(1 << 36), 1 << 36
    return np.array(b, dtype=np.int64)


def table_digests() -> dict[str, str]:
    """BLAKE2b-64 of every table (pinned by the golden tests: a platform whose tables differ is caught)."""
    import hashlib

    tabs = {"sigmoid": sigmoid_table(), "phi": phi_table(), "inv_scale": inv_scale_table(),
            "inv_sigma": inv_sigma_table(), "exp": exp_table(), "edges12": bucket_edges(12),
            "centres12": bucket_centres(12), "boundaries": logistic_boundaries()}
    return {k: hashlib.blake2b(np.ascontiguousarray(v).astype("<f8" if v.dtype.kind == "f" else "<i8").tobytes(),
                               digest_size=8).hexdigest() for k, v in tabs.items()}


# --- integer CDFs -----------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _slopes(name: str) -> tuple[np.ndarray, np.ndarray]:
    t = {"sigmoid": sigmoid_table, "phi": phi_table}[name]()
    return t, np.append(np.diff(t), 0)


def interp(name: str, u: np.ndarray, half_range: int) -> np.ndarray:
    """F̃(u) = T[j] + ⌊(T[j+1] − T[j])·f / 2^16⌋ for u = (j + f/2^16)/2^10 in fixed point 2^-26 (int64), u clipped
    to the table ("sigmoid" or "phi")."""
    table, slope = _slopes(name)
    off = (half_range << TAB_BITS) << FRAC_BITS
    u = np.minimum(np.maximum(u + off, 0), 2 * off - 1)
    j = u >> FRAC_BITS
    return table[j] + ((slope[j] * (u & ((1 << FRAC_BITS) - 1))) >> FRAC_BITS)


def to_fixed(x: np.ndarray, bits: int, bound: float) -> np.ndarray:
    """round(clip(x, ±bound)·2^bits) as int64 (exact for the exact network outputs)."""
    return np.rint(np.clip(x, -bound, bound) * 2.0 ** bits).astype(np.int64)


def gauss_params(mu: np.ndarray, logvar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(m, w): μ in fixed point 2^-20 and w = 2^16·exp(−λ/2) from the table, λ on the 2^-10 grid."""
    v = np.rint((np.clip(logvar, -LV_MAX, LV_MAX) + LV_MAX) * 2.0 ** LV_BITS).astype(np.int64)
    return to_fixed(mu, X_BITS, MU_MAX), inv_sigma_table()[v]


def gauss_cdf(i: np.ndarray, m: np.ndarray, w: np.ndarray, bits: int) -> np.ndarray:
    """C(i) of the posterior over 2^b prior-equal-mass buckets: Φ((e_i − μ)/σ) at edge i, as an integer CDF."""
    n = 1 << bits
    e = bucket_edges(bits)[i]
    val = interp("phi", ((e - m) * w) >> (X_BITS + 16 - U_SHIFT), PHI_RANGE)
    c = ((val * (TOTAL - n)) >> 32) + i
    return np.where(i <= 0, 0, np.where(i >= n, TOTAL, c))


def logistic_params(mu: np.ndarray, log_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(m, w): μ in fixed point 2^-20 and w = 2^16·exp(−ℓ) from the table, ℓ = log s on the 2^-8 grid."""
    v = np.rint((np.clip(log_s, LS_MIN, LS_MAX) - LS_MIN) * 2.0 ** LS_BITS).astype(np.int64)
    return to_fixed(mu, X_BITS, LOC_MAX), inv_scale_table()[v]


def logistic_cdf(s: np.ndarray, m: np.ndarray, w: np.ndarray) -> np.ndarray:
    """C(s), s ∈ 0..256, of the 256-bin discretized logistic: σ((b_s − μ)/s) at bin edge s, as an integer CDF."""
    val = interp("sigmoid", ((logistic_boundaries()[s] - m) * w) >> (X_BITS + 16 - U_SHIFT), SIG_RANGE)
    return ((val * (TOTAL - 256)) >> 32) + s


def bernoulli_c1(logit: np.ndarray) -> np.ndarray:
    """C(1) = ⌊σ̃(−l)·(TOTAL − 2)/2^32⌋ + 1: the integer mass of x = 0 (C(0) = 0, C(2) = TOTAL)."""
    u = to_fixed(-logit, U_SHIFT, SIG_RANGE)
    return ((interp("sigmoid", u, SIG_RANGE) * (TOTAL - 2)) >> 32) + 1


def softmax_cdf(logits: np.ndarray) -> np.ndarray:
    """Integer CDF (…, K+1) of softmax over the last axis: C(k) = ⌊S_k·(TOTAL − K)/S_K⌋ + k, S_k = Σ_{j<k} ẽ_j."""
    K = logits.shape[-1]
    t = np.rint(np.clip(logits.max(-1, keepdims=True) - logits, 0, EXP_RANGE) * 2.0 ** EXP_BITS).astype(np.int64)
    e = exp_table()[t]
    s = np.concatenate([np.zeros(e.shape[:-1] + (1,), np.int64), np.cumsum(e, -1)], -1)
    return (s * (TOTAL - K)) // s[..., -1:] + np.arange(K + 1)
