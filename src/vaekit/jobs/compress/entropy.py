"""Integer coding tables and range coding of quantized latents with ``constriction``.

Determinism: the decoder never evaluates the float density. At save time each channel's PMF over the integer
range [lo_c, hi_c] (tails of mass ≤ ``tail_mass`` cut off) plus one *escape* symbol is quantized to integer
frequencies f ≥ 1 with Σ f = 2^PRECISION and stored in the model file (``table_freq/lo/len``). Encoder and
decoder hand constriction the exactly representable dyadic probabilities f / 2^PRECISION, so both build
bit-identical models on any machine.

Escape rule: a latent n outside [lo_c, hi_c] is coded as the escape symbol (index K_c − 1), and after all
channels its overshoot d = n − clamp(n, lo_c, hi_c) ≠ 0 follows, zig-zag mapped to u = 2(d−1) (d > 0) or
2(−d−1)+1 (d < 0), as b = bitlength(u) ∈ 0..31 under Uniform(32) followed by the b−1 low bits of u in
chunks of ≤ 16 bits under Uniform(2^k). |d| ≥ 2^30 is refused at encode time.
"""
from __future__ import annotations

import constriction
import numpy as np
import torch

from vaekit.errors import CorruptFileError, VaekitError

PRECISION = 16
TOTAL = 1 << PRECISION
SEARCH = 512  # integer grid [-SEARCH, SEARCH] searched for the table range
MAX_ESCAPE_BITS = 31


@torch.no_grad()
def build_tables(net: torch.nn.Module, tail_mass: float = 1e-6) -> None:
    """Fill ``net.table_*`` from ``net.entropy``: f_i = 1 + ⌊p_i (2^P − K)⌋, remainder added to the mode."""
    pmf = net.entropy.integer_pmf(-SEARCH, SEARCH).numpy()  # (M, 2S+1) float64
    M = pmf.shape[0]
    cdf = np.cumsum(pmf, axis=1)
    los, lens, rows = [], [], []
    for c in range(M):
        inside = np.nonzero((cdf[c] > tail_mass / 2) & (cdf[c] - pmf[c] < 1 - tail_mass / 2))[0]
        a, b = (int(inside[0]), int(inside[-1])) if inside.size else (SEARCH, SEARCH)
        p = np.append(pmf[c, a:b + 1], max(0.0, 1.0 - float(pmf[c, a:b + 1].sum())))
        K = p.size
        f = 1 + np.floor(p / p.sum() * (TOTAL - K)).astype(np.int64)
        f[int(np.argmax(f))] += TOTAL - int(f.sum())
        los.append(a - SEARCH)
        lens.append(K)
        rows.append(f)
    Kmax = max(lens)
    table = np.zeros((M, Kmax), dtype=np.int32)
    for c, f in enumerate(rows):
        table[c, :f.size] = f
    net.table_freq = torch.from_numpy(table)
    net.table_lo = torch.tensor(los, dtype=torch.int32)
    net.table_len = torch.tensor(lens, dtype=torch.int32)


def check_tables(freq: np.ndarray, lo: np.ndarray, lens: np.ndarray, source: str) -> None:
    """Tables must be complete: 2 ≤ K_c ≤ width, f ≥ 1 on 0..K_c−1, Σ f = 2^P (else CheckpointError-like)."""
    if freq.ndim != 2 or freq.shape[0] != lo.shape[0] or lens.shape != lo.shape or freq.shape[1] < 2:
        raise VaekitError(f"{source}: coding tables have inconsistent shapes (were they built?)")
    for c in range(freq.shape[0]):
        K = int(lens[c])
        if not 2 <= K <= freq.shape[1] or (freq[c, :K] < 1).any() or int(freq[c, :K].sum()) != TOTAL:
            raise VaekitError(f"{source}: coding table of channel {c} is invalid")


def _models(freq: np.ndarray, lens: np.ndarray) -> list:
    return [constriction.stream.model.Categorical(freq[c, :int(lens[c])].astype(np.float64) / TOTAL, perfect=False)
            for c in range(freq.shape[0])]


def _zigzag(d: np.ndarray) -> np.ndarray:
    return np.where(d > 0, 2 * (d - 1), 2 * (-d - 1) + 1).astype(np.int64)


def _unzigzag(u: np.ndarray) -> np.ndarray:
    return np.where(u % 2 == 0, u // 2 + 1, -(u // 2) - 1).astype(np.int64)


def encode_latents(y_hat: np.ndarray, freq: np.ndarray, lo: np.ndarray, lens: np.ndarray) -> bytes:
    """Range-code integer latents (M, h, w), channel by channel, then the escape overshoots → payload bytes."""
    M = y_hat.shape[0]
    flat = y_hat.reshape(M, -1).astype(np.int64)
    hi = lo.astype(np.int64) + lens.astype(np.int64) - 2
    enc = constriction.stream.queue.RangeEncoder()
    overs: list[np.ndarray] = []
    for c, model in enumerate(_models(freq, lens)):
        v = flat[c]
        sym = v - int(lo[c])
        out = (v < int(lo[c])) | (v > int(hi[c]))
        sym[out] = int(lens[c]) - 1
        enc.encode(sym.astype(np.int32), model)
        if out.any():
            overs.append(v[out] - np.clip(v[out], int(lo[c]), int(hi[c])))
    if overs:
        d = np.concatenate(overs)
        if np.abs(d).max() >= 1 << 30:
            raise VaekitError("a latent value is too large to code (|overshoot| ≥ 2^30); the input is not an image?")
        u = _zigzag(d)
        nbits = np.array([int(x).bit_length() for x in u], dtype=np.int32)
        enc.encode(nbits, constriction.stream.model.Uniform(MAX_ESCAPE_BITS + 1))
        for x, b in zip(u.tolist(), nbits.tolist()):
            _encode_bits(enc, x, b - 1)
    return enc.get_compressed().astype("<u4").tobytes()


def _encode_bits(enc: "constriction.stream.queue.RangeEncoder", x: int, nb: int) -> None:
    while nb > 0:
        k = min(16, nb)
        nb -= k
        enc.encode(np.array([(x >> nb) & ((1 << k) - 1)], dtype=np.int32), constriction.stream.model.Uniform(1 << k))


def _decode_bits(dec: "constriction.stream.queue.RangeDecoder", nb: int) -> int:
    x = 1
    while nb > 0:
        k = min(16, nb)
        nb -= k
        x = (x << k) | int(dec.decode(constriction.stream.model.Uniform(1 << k), 1)[0])
    return x


def decode_latents(payload: bytes, shape: tuple[int, int, int], freq: np.ndarray, lo: np.ndarray,
                   lens: np.ndarray, source: str = "file") -> np.ndarray:
    """Inverse of :func:`encode_latents` → int32 latents of ``shape`` (M, h, w); bad streams → CorruptFileError."""
    if len(payload) % 4:
        raise CorruptFileError(f"{source}: corrupt lossy payload (length {len(payload)} is not a multiple of 4)")
    dec = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))
    try:
        out = _decode(dec, shape, freq, lo, lens)
    except (AssertionError, ValueError, RuntimeError, OverflowError) as e:
        raise CorruptFileError(f"{source}: corrupt lossy payload ({e.__class__.__name__}: {e})") from None
    if not dec.maybe_exhausted():
        raise CorruptFileError(f"{source}: the coded stream does not end where it should (corrupt or wrong model)")
    return out


def _decode(dec: "constriction.stream.queue.RangeDecoder", shape: tuple[int, int, int], freq: np.ndarray,
            lo: np.ndarray, lens: np.ndarray) -> np.ndarray:
    M, h, w = shape
    out = np.empty((M, h * w), dtype=np.int64)
    esc: list[tuple[int, np.ndarray]] = []
    for c, model in enumerate(_models(freq, lens)):
        sym = dec.decode(model, h * w).astype(np.int64)
        out[c] = sym + int(lo[c])
        where = np.nonzero(sym == int(lens[c]) - 1)[0]
        if where.size:
            esc.append((c, where))
    n_esc = sum(len(wh) for _, wh in esc)
    if n_esc:
        nbits = dec.decode(constriction.stream.model.Uniform(MAX_ESCAPE_BITS + 1), n_esc)
        k = 0
        for c, where in esc:
            hi = int(lo[c]) + int(lens[c]) - 2
            for i in where.tolist():
                b = int(nbits[k])
                k += 1
                u = _decode_bits(dec, b - 1) if b > 0 else 0
                d = int(_unzigzag(np.array([u]))[0])
                out[c, i] = (hi + d) if d > 0 else (int(lo[c]) + d)
    return out.reshape(M, h, w).astype(np.int32)


def table_bits(y_hat: np.ndarray, freq: np.ndarray, lo: np.ndarray, lens: np.ndarray) -> float:
    """Ideal code length under the integer tables: Σ −log₂(f/2^P) plus the escape overshoot bits."""
    M = y_hat.shape[0]
    flat = y_hat.reshape(M, -1).astype(np.int64)
    bits = 0.0
    for c in range(M):
        K, a = int(lens[c]), int(lo[c])
        sym = np.clip(flat[c] - a, 0, K - 1)
        esc = (flat[c] < a) | (flat[c] > a + K - 2)
        sym[esc] = K - 1
        bits += float(-np.log2(freq[c, sym] / TOTAL).sum())
        if esc.any():
            u = _zigzag(flat[c][esc] - np.clip(flat[c][esc], a, a + K - 2))
            bits += float(sum(np.log2(MAX_ESCAPE_BITS + 1) + max(0, int(x).bit_length() - 1) for x in u))
    return bits
