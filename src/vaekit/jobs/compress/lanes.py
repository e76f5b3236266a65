"""Vectorised rANS: many lanes (64-bit states) over one shared stack of 32-bit words, every operation integer-only.

Lane state x ∈ [2^32, 2^64), precision P = 24 (TOTAL = 2^24). A symbol with integer interval [c, c + f):
push: if x ≥ f·2^40 emit the low word and x ← x >> 32; then x ← ⌊x/f⌋·2^24 + (x mod f) + c.
pop: y = x mod 2^24 selects the symbol (c ≤ y < c + f); x ← f·⌊x/2^24⌋ + y − c, and if x < 2^32 one word comes
back: x ← x·2^32 + word. Within one vectorised operation the lanes emit (or take) words in ascending lane order,
so the decoder, which replays every operation in reverse, moves exactly the same words.

The stack starts empty above an endless sequence of *virtual* words V_k (splitmix64 of k): an encoder that pops
more words than exist takes virtual ones (the "initial bits" of bits-back, paid only where they are needed), and
the file holds every word above the deepest point reached. The decoder, which may never go below the file's
first word, ends holding exactly V_{g−1} … V_0. Lane (0, 0) starts at 2^32; every other lane decodes its start
state from it and, at the end, is encoded back into it (≈ log2 x + 5 bits each way, see ``Lanes._pop_state``), so
a lane costs ≈ 0 bits of its own. The lane schedule (slots added per step) is coded on lane (0, 0) last (Elias γ).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from vaekit.jobs.compress.fixedpoint import TOTAL, P

L = np.uint64(1 << 32)
M32 = np.uint64(0xFFFFFFFF)
_U32, _UP, _SHIFT = np.uint64(32), np.uint64(P), np.uint64(64 - P)


class StreamExhausted(Exception):
    """The decoder needed a word below the start of the stream, or a lane ended in an impossible state."""


def virtual_words(start: int, count: int) -> np.ndarray:
    """V_k for k = start … start + count − 1 (splitmix64, upper 32 bits)."""
    z = np.arange(start, start + count, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x5EED)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return ((z ^ (z >> np.uint64(31))) >> _U32).astype(np.uint32)


class Tail:
    """The shared word stack. Logical position p holds ``buf[p − low]``; the live words are [deepest, ptr)."""

    def __init__(self, words: np.ndarray | None = None, virtual: bool = False) -> None:
        w = np.zeros(0, np.uint32) if words is None else np.asarray(words, dtype=np.uint32)
        self.buf = np.zeros(max(1024, 2 * len(w)), np.uint32)
        self.buf[:len(w)] = w
        self.low, self.ptr, self.deepest, self.virtual = 0, len(w), 0, virtual

    def push(self, w: np.ndarray) -> None:
        k, top = len(w), self.ptr - self.low
        if top + k > len(self.buf):
            self.buf = np.concatenate([self.buf[:top], np.zeros(max(top + k, 2 * len(self.buf)) - top, np.uint32)])
        self.buf[top:top + k] = w
        self.ptr += k

    def _extend(self, new_low: int) -> None:
        m = self.low - new_low
        self.buf = np.concatenate([virtual_words(-self.low, m)[::-1], self.buf])
        self.low = new_low

    def pop(self, k: int) -> np.ndarray:
        """The top k words in ascending stack order (the deepest first)."""
        new = self.ptr - k
        if new < self.low:
            if not self.virtual:
                raise StreamExhausted
            self._extend(new - 64)
        out = self.buf[new - self.low:self.ptr - self.low].copy()
        self.ptr = new
        self.deepest = min(self.deepest, new)
        return out

    def push_word(self, w: int) -> None:
        top = self.ptr - self.low
        if top >= len(self.buf):
            self.buf = np.concatenate([self.buf, np.zeros(len(self.buf), np.uint32)])
        self.buf[top] = w
        self.ptr += 1

    def pop_word(self) -> int:
        if self.ptr - 1 < self.low:
            if not self.virtual:
                raise StreamExhausted
            self._extend(self.ptr - 65)
        self.ptr -= 1
        self.deepest = min(self.deepest, self.ptr)
        return int(self.buf[self.ptr - self.low])

    def available(self) -> int:
        """Words above the deepest point reached (real data: taking them costs nothing)."""
        return self.ptr - self.deepest

    def top(self) -> int:
        return int(self.buf[self.ptr - self.low - 1])

    def pad(self, words: int) -> None:
        """Encoder: make the stream at least ``words`` long by including more virtual words at its bottom."""
        short = words - self.available()
        if short > 0:
            if self.deepest - short < self.low:
                self._extend(self.deepest - short)
            self.deepest -= short

    def contents(self) -> np.ndarray:
        return self.buf[self.deepest - self.low:self.ptr - self.low].copy()

    def ends_on_virtual_words(self) -> bool:
        """Decoder: what is left is exactly V_{g−1} … V_0 (g = words left)."""
        rest = self.contents()
        return bool(np.array_equal(rest, virtual_words(0, len(rest))[::-1]))


class Lanes:
    """rANS states X (G, B) over one :class:`Tail`: B item slots, each with G lanes. Latent symbols go to the
    slots' first lanes X[0, :a]; pixel row r (pixels rG … rG+G−1 of every item) to X[:G, :a] at once, so one numpy
    operation codes G·a symbols. Words move in the row-major order of the view."""

    def __init__(self, n: int, tail: Tail, groups: int = 1) -> None:
        self.X = np.full((groups, n), L, dtype=np.uint64)
        self.tail, self.groups = tail, groups

    def resize(self, n: int) -> None:
        """Grow to n slots, keeping lane (0, 0)."""
        x00 = self.X[0, 0]
        self.X = np.full((self.groups, max(n, 1)), L, dtype=np.uint64)
        self.X[0, 0] = x00

    def _view(self, a: int, rows: int) -> np.ndarray:
        return self.X[0, :a] if rows == 0 else self.X[:rows, :a]

    def push(self, a: int, c: np.ndarray, f: np.ndarray, rows: int = 0) -> None:
        """Encode one symbol per lane (first lanes, or ``rows`` groups) with intervals [c, c + f) of TOTAL."""
        x = self._view(a, rows)
        f = np.asarray(f, dtype=np.uint64)
        over = x >= (f << _SHIFT)
        if over.any():
            self.tail.push((x[over] & M32).astype(np.uint32))
            x[over] >>= _U32
        q, r = np.divmod(x, f)
        x[...] = (q << _UP) + r + np.asarray(c, dtype=np.uint64)

    def slots(self, a: int, rows: int = 0) -> np.ndarray:
        """y = x mod 2^24 per lane (int64): the value the popped symbol's interval must contain."""
        return (self._view(a, rows) & np.uint64(TOTAL - 1)).astype(np.int64)

    def pop(self, a: int, y: np.ndarray, c: np.ndarray, f: np.ndarray, rows: int = 0) -> None:
        """Finish decoding the symbols whose intervals [c, c + f) contain the slots y."""
        x = self._view(a, rows)
        x[...] = np.asarray(f, dtype=np.uint64) * (x >> _UP) + (y - c).astype(np.uint64)
        under = x < L
        if under.any():
            w = self.tail.pop(int(under.sum())).astype(np.uint64)
            x[under] = (x[under] << _U32) | w

    def push_uniform(self, a: int, s: np.ndarray, bits: int) -> None:
        self.push(a, s.astype(np.int64) << (P - bits), np.full(a, 1 << (P - bits), np.int64))

    def pop_uniform(self, a: int, bits: int) -> np.ndarray:
        y = self.slots(a)
        s = y >> (P - bits)
        self.pop(a, y, s << (P - bits), np.full(a, 1 << (P - bits), np.int64))
        return s

    # --- lane life ----------------------------------------------------------------------------------------------------
    # A state x ∈ [2^32, 2^64) is coded on lane 0 as k = ⌊log2 x⌋ − 32 under Uniform(32), then the k + 32 bits of
    # x − 2^(k+32) in chunks of ≤ 16 bits: ≈ log2 x + 5 bits, close to the ideal of rANS's ≈ 1/x state density,
    # so a lane that takes its start state from lane 0 and gives its final state back costs ≈ 0 bits.
    # Lane (0, 0) alone, as a Python int (the same rANS steps as ``push``/``pop``, without numpy's per-call cost).
    def _push0(self, x: int, c: int, f: int) -> int:
        if x >= f << (64 - P):
            self.tail.push_word(x & 0xFFFFFFFF)
            x >>= 32
        return ((x // f) << P) + x % f + c

    def _pop0(self, x: int, bits: int) -> tuple[int, int]:
        """(new state, symbol) of a Uniform(2^bits) pop."""
        y = x & (TOTAL - 1)
        s = y >> (P - bits)
        x = (1 << (P - bits)) * (x >> P) + y - (s << (P - bits))
        if x < 1 << 32:
            x = (x << 32) | self.tail.pop_word()
        return x, s

    @staticmethod
    def _chunks(k: int) -> list[int]:
        q = (k - 1) // 16
        return [k - 16 * q] + [16] * q

    def _pop_state(self) -> int:
        x, k = self._pop0(int(self.X[0, 0]), 5)
        k += 32
        r = 0
        for size in self._chunks(k):
            x, v = self._pop0(x, size)
            r = (r << size) | v
        self.X[0, 0] = np.uint64(x)
        return (1 << k) | r

    def _push_state(self, v: int) -> None:
        x = int(self.X[0, 0])
        k = v.bit_length() - 1
        r = v - (1 << k)
        for size in reversed(self._chunks(k)):
            x = self._push0(x, (r & ((1 << size) - 1)) << (P - size), 1 << (P - size))
            r >>= size
        self.X[0, 0] = np.uint64(self._push0(x, (k - 32) << (P - 5), 1 << (P - 5)))

    def _others(self, slots: range) -> list[tuple[int, int]]:
        """Lanes (g, l) of the slots, slot-major, without lane (0, 0) (which starts at 2^32 and holds the rest)."""
        return [(g, lane) for lane in slots for g in range(self.groups) if g or lane]

    def start(self, slots: range) -> None:
        """Encoder: each new lane decodes its start state from lane (0, 0)."""
        for g, lane in self._others(slots):
            self.X[g, lane] = np.uint64(self._pop_state())

    def end(self, slots: range) -> None:
        """Decoder: the lanes encode their states back into lane (0, 0), in reverse (mirror of :meth:`start`)."""
        for g, lane in reversed(self._others(slots)):
            self._push_state(int(self.X[g, lane]))

    def merge(self, n: int) -> None:
        """Encoder, at the end: every lane of slots 0 … n−1 but (0, 0) is coded into lane (0, 0)."""
        for g, lane in reversed(self._others(range(n))):
            self._push_state(int(self.X[g, lane]))

    def unmerge(self, n: int) -> None:
        """Decoder, at the start: the inverse of :meth:`merge`."""
        for g, lane in self._others(range(n)):
            self.X[g, lane] = np.uint64(self._pop_state())

    def seal(self) -> None:
        """Encoder, last: lane 0's state goes to the stack as two words (low, high)."""
        x = int(self.X[0, 0])
        self.tail.push(np.array([x & 0xFFFFFFFF, x >> 32], dtype=np.uint32))

    def unseal(self) -> None:
        """Decoder, first: the inverse of :meth:`seal` (a state below 2^32 is impossible)."""
        lo, hi = (int(v) for v in self.tail.pop(2))
        if hi == 0:
            raise StreamExhausted
        self.X[0, 0] = np.uint64((hi << 32) | lo)

    def push_numbers(self, values: list[int]) -> None:
        """Code non-negative integers on lane (0, 0) (Elias γ of v + 1: ⌊log2(v+1)⌋ zeros, a one, the lower bits),
        so that :meth:`pop_numbers` returns them in the given order; a zero costs one bit."""
        x, half = int(self.X[0, 0]), 1 << (P - 1)
        for v in reversed(values):
            v1 = v + 1
            z = v1.bit_length() - 1
            for bit in [(v1 >> i) & 1 for i in range(z)] + [1] + [0] * z:
                x = self._push0(x, bit * half, half)
        self.X[0, 0] = np.uint64(x)

    def pop_numbers(self, count: int, max_bits: int = 40) -> list[int]:
        """The inverse of :meth:`push_numbers`; a prefix of more than ``max_bits`` zeros is a corrupt stream."""
        out, x = [], int(self.X[0, 0])
        for _ in range(count):
            z, bit = 0, 0
            while True:
                x, bit = self._pop0(x, 1)
                if bit:
                    break
                z += 1
                if z > max_bits:
                    raise StreamExhausted
            v1 = 1
            for _ in range(z):
                x, bit = self._pop0(x, 1)
                v1 = 2 * v1 + bit
            out.append(v1 - 1)
        self.X[0, 0] = np.uint64(x)
        return out

    def at_rest(self) -> bool:
        """Decoder, at the end: lane (0, 0) is back at its start state 2^32."""
        return int(self.X[0, 0]) == int(L)


def bsearch(cdf: Callable[[np.ndarray], np.ndarray], y: np.ndarray, hi: int) -> tuple[np.ndarray, ...]:
    """(s, c, f) with C(s) = c ≤ y < C(s) + f, s ∈ [0, hi) for a strictly increasing integer CDF, C(0) = 0,
    C(hi) = TOTAL; hi a power of two (log2 hi halvings)."""
    n = len(y)
    lo, top = np.zeros(n, np.int64), np.full(n, hi, np.int64)
    clo, chi = np.zeros(n, np.int64), np.full(n, TOTAL, np.int64)
    for _ in range(int(hi).bit_length() - 1):
        mid = (lo + top) >> 1
        cm = cdf(mid)
        go = cm <= y
        lo, clo = np.where(go, mid, lo), np.where(go, cm, clo)
        top, chi = np.where(go, top, mid), np.where(go, chi, cm)
    return lo, clo, chi - clo
