"""Lossless bits-back coding with a trained VAE (BB-ANS, Townsend, Bird & Barber 2019), many items in parallel lanes.

Per item x, on its lane's ANS stack: pop z̄ ~ Q(z̄|x) (decode with the posterior), push x with P(x|z̄), push z̄ with
P(z̄). Net cost −log P(x|z̄) − log P(z̄) + log Q(z̄|x), i.e. −ELBO in expectation plus a small discretization loss.
Latents are discretized into 2^b buckets per dimension of equal mass under N(0, 1), so P(z̄) = 2^-b per dimension
and Q(i) ∝ Φ((e_{i+1} − μ)/σ) − Φ((e_i − μ)/σ), e_i = Φ⁻¹(i/2^b); the decoder sees the bucket centre
Φ⁻¹((i + ½)/2^b).

Speed: each step codes one item on each of a ≤ ``lanes`` lanes (:mod:`.lanes`), so every network call sees a
batch; the first steps ramp up (the lane count grows as the shared stack holds enough words for the new lanes'
first pops), and the growth per step is coded (Elias γ) at the top of the stream. Items go to steps in order.

Determinism: the networks are evaluated exactly (:mod:`.exactnet`) and every table is integer arithmetic on
correctly rounded values (:mod:`.fixedpoint`), so the file's bits do not depend on batch size, thread count or
device. The file carries a BLAKE2b digest of the raw data, so a decoder that diverged anyway fails loudly. Sizes
read from a header are checked against the payload before anything is allocated.

Hierarchical (ladder) VAEs with L stochastic layers are coded by plain bits-back per layer: pop z̄_L ~ Q(z_L|x),
then z̄_i ~ Q(z_i | z̄_{i+1}, x) down to z̄_1, push x with P(x|z̄_1), push each z̄_i (i < L) with P(z_i | z̄_{i+1}) and
z̄_L with P(z_L); a lower layer's buckets are the top layer's, shifted and scaled to where that layer's values lie
(:mod:`.layergrid`, written to the header), and P(z_i | z̄_{i+1}) is a Gaussian over them like Q.
The decoder pops z̄_L, then z̄_{L−1} … z̄_1 from their priors (it knows the layer above), x, and pushes the
posteriors back bottom first. Net cost: −log P(x|z̄_1) − Σ log P(z̄_i | z̄_{i+1}) + Σ log Q(z̄_i | ·), the
hierarchical −ELBO plus the discretization loss.

Container format 3 (a format-2 bits-back file came from the earlier one-stream coder and is refused with one line).
"""
from __future__ import annotations

import copy
import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from vaekit.core.config import ModelConfig
from vaekit.core.likelihoods import LIKELIHOODS
from vaekit.core.model import VAE
from vaekit.errors import CorruptFileError, DataError, VaekitError
from vaekit.jobs.compress import fixedpoint as fx
from vaekit.jobs.compress.container import (
    Container,
    check_model,
    fingerprint,
    pack,
    unpack,
)
from vaekit.jobs.compress.exactnet import ExactNet, check_supported, model_input
from vaekit.jobs.compress.families import (
    FAMILIES,
    Family,
    posterior_pop,
    row_groups,
    to_rows,
)
from vaekit.jobs.compress.lanes import Lanes, StreamExhausted, Tail
from vaekit.jobs.compress.layergrid import LayerGrids

CODEC = "bitsback"
VERSION = 3  # container version of bits-back files written by the lane coder
MAX_ITEMS = 10 ** 8
DEFAULT_LANES = 1024
MAX_LANES = 1 << 16
DEFAULT_GROUPS, MAX_GROUPS = 4, 64  # lanes per item slot: pixel d of an item goes to lane d mod G
MAX_VALUES = 1 << 34  # decoded symbols one file may declare (n · D)


def coding_config(model: Any) -> dict[str, Any]:
    """The model's config without keys at their defaults: the identity a file is bound to (new config fields with
    defaults do not change it)."""
    base = ModelConfig().to_dict()
    return {k: v for k, v in model.config.to_dict().items() if k not in base or base[k] != v}


@dataclass
class BitsBackStats:
    """What one encode measured: bytes, bits per dimension and the model's −ELBO for comparison."""

    n_items: int
    n_dims: int
    payload_bits: int
    file_bytes: int
    seconds: float

    @property
    def bits_per_dim(self) -> float:
        return 8 * self.file_bytes / max(1, self.n_items * self.n_dims)


class BitsBackCodec:
    """BB-ANS over a trained :class:`~vaekit.core.model.VAE` with 2^latent_bits prior-equal-mass buckets per latent,
    ``lanes`` items coded side by side, networks evaluated ``batch`` rows at a time on ``device`` (0: as many rows
    as keep the widest activation within 2^21 values, at most 4096 — a conv net's float64 maps stay in cache; the
    bytes do not depend on it)."""

    def __init__(self, model: VAE, config: dict[str, Any] | None = None, latent_bits: int = 12,
                 lanes: int = DEFAULT_LANES, batch: int = 0, device: str | torch.device = "cpu",
                 groups: int = DEFAULT_GROUPS) -> None:
        family = model.likelihood.coding_family
        if family not in FAMILIES:
            able = ", ".join(n for n in LIKELIHOODS.names() if LIKELIHOODS.get(n).coding_family)
            raise VaekitError(f"bits-back coding needs a discrete likelihood ({able}); this model "
                              f"uses {model.config.likelihood!r}")
        check_supported(model)
        if not 4 <= latent_bits <= 16:
            raise VaekitError(f"latent_bits must be in 4..16, got {latent_bits}")
        if not 1 <= lanes <= MAX_LANES or batch < 0 or not 1 <= groups <= MAX_GROUPS:
            raise VaekitError(f"lanes must be in 1..{MAX_LANES}, groups in 1..{MAX_GROUPS} and batch ≥ 0, got "
                              f"{lanes}, {groups} and {batch}")
        self.model = copy.deepcopy(model).double().eval()
        self.config = config if config is not None else coding_config(model)
        self.fingerprint = fingerprint(model, self.config)
        batch = batch or auto_batch(model)
        self.latent_bits, self.lanes, self.batch, self.groups = latent_bits, lanes, batch, groups
        self.family: type[Family] = FAMILIES[family]
        self.net = ExactNet(model, device)
        self.d = model.config.latent_dim
        self.D = int(np.prod(model.config.input_shape))
        self.centres = fx.bucket_centres(latent_bits)

    # --- model pieces -------------------------------------------------------------------------------------------------
    def _prepare(self, x: np.ndarray) -> np.ndarray:
        """Validate raw items: (n, D) integer symbols in the likelihood's alphabet."""
        if x.ndim < 2 or int(np.prod(x.shape[1:])) != self.D:
            raise DataError(f"data of shape {tuple(x.shape)} does not fit this model (each item needs {self.D} values)")
        if not np.issubdtype(x.dtype, np.integer) and not np.issubdtype(x.dtype, np.bool_):
            if np.issubdtype(x.dtype, np.floating) and np.isfinite(x).all() and (np.round(x) == x).all():
                x = x.astype(np.int64)
            else:
                raise DataError(f"lossless coding needs integer symbols, got dtype {x.dtype} with non-integer values")
        hi = self.model.likelihood.n_symbols() - 1
        if x.size and (x.min() < 0 or x.max() > hi):
            raise DataError(f"lossless coding with a {self.model.config.likelihood} model needs symbols in 0..{hi}, "
                            f"got range [{x.min()}, {x.max()}]")
        return np.ascontiguousarray(x.reshape(len(x), self.D)).astype(np.int32)

    def _posterior(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """(m, w) integer parameters (fixedpoint.gauss_params) of the top layer's posterior for items x (n, D) and
        the lower layers' bottom-up features (none for one layer), ``batch`` items at a time."""
        mus, lvs, feats = [], [], []
        for s in range(0, len(x), self.batch):
            mu, lv, hs = self.net.bottom_up(model_input(x[s:s + self.batch], self.model.likelihood))
            mus.append(mu)
            lvs.append(lv)
            feats.append(hs)
        if not mus:
            return np.zeros((0, self.d), np.int64), np.zeros((0, self.d), np.int64), []
        m, w = fx.gauss_params(np.concatenate(mus), np.concatenate(lvs))
        return m, w, [np.concatenate([f[i] for f in feats]) for i in range(self.net.layers - 1)]

    def _down(self, i: int, z: np.ndarray, h: np.ndarray) -> list[np.ndarray]:
        """The exact (μ_p, λ_p, μ_q, λ_q) of layer i given z̄_{i+1} values z and the features h, ``batch`` rows at
        a time."""
        parts = [self.net.step_down(i, z[s:s + self.batch], h[s:s + self.batch])
                 for s in range(0, len(z), self.batch)]
        return [np.concatenate([p[j] for p in parts]) for j in range(len(parts[0]))]

    def _prior_step(self, i: int, above: np.ndarray, grids: LayerGrids) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Top-down step of layer i for the bucket indices ``above`` of z̄_{i+1}: its features t (kept for
        :meth:`_posterior_step`) and the integer (m, w) over layer i's buckets of p(z_i | z̄_{i+1})."""
        z = grids.z(i + 1, self.centres[above])
        parts = [self.net.prior_step(i, z[s:s + self.batch]) for s in range(0, len(z), self.batch)]
        t, mu, lv = (np.concatenate([p[j] for p in parts]) for j in range(3))
        return t, fx.gauss_params(*grids.to_u(i, mu, lv))

    def _posterior_step(self, i: int, t: np.ndarray, h: np.ndarray, grids: LayerGrids) -> tuple[np.ndarray, ...]:
        """Integer (m, w) of q(z_i | z̄_{i+1}, x) from the kept features t and the bottom-up features h."""
        parts = [self.net.posterior_step(i, t[s:s + self.batch], h[s:s + self.batch])
                 for s in range(0, len(t), self.batch)]
        mu, lv = (np.concatenate([p[j] for p in parts]) for j in range(2))
        return fx.gauss_params(*grids.to_u(i, mu, lv))

    def _fit_grids(self, m: np.ndarray, feats: list[np.ndarray]) -> LayerGrids:
        """The lower layers' bucket grids (:mod:`.layergrid`) from the posterior means, top-down at the means."""
        if self.net.layers == 1:
            return LayerGrids.none(self.d)
        if not len(m):  # no items: zero shifts and scales, still declared in the header
            zeros = np.zeros((self.net.layers - 1, self.d), np.int64)
            return LayerGrids(zeros, zeros.copy())
        z = np.rint(m * 2.0 ** -4) * 2.0 ** -16  # the top mean (2^-20 fixed point) on the activation grid
        means, scales = [], []
        for j in reversed(range(self.net.layers - 1)):
            _, _, mu, lv = self._down(j, z, feats[j])
            means.insert(0, mu)
            scales.insert(0, fx.gauss_params(mu, lv)[1])
            z = np.rint(mu * 2.0 ** 16) * 2.0 ** -16
        return LayerGrids.fit(means, scales)

    def _pop_gauss(self, lanes: Lanes, a: int, m: np.ndarray, w: np.ndarray, order: range) -> np.ndarray:
        """One bucket per lane and dimension from the discretized Gaussians (m, w) (a, d), dimensions in ``order``."""
        idx = np.empty((a, self.d), np.int64)
        for k in order:
            idx[:, k] = posterior_pop(lanes, a, m[:, k], w[:, k], self.latent_bits)
        return idx

    def _push_gauss(self, lanes: Lanes, a: int, idx: np.ndarray, m: np.ndarray, w: np.ndarray, order: range) -> None:
        b = self.latent_bits
        for k in order:
            c = fx.gauss_cdf(idx[:, k], m[:, k], w[:, k], b)
            lanes.push(a, c, fx.gauss_cdf(idx[:, k] + 1, m[:, k], w[:, k], b) - c)

    def _pixels(self, idx: np.ndarray, groups: int, grids: LayerGrids) -> Family:
        """The coding family of p(x | z̄_1) for a batch of bottom-layer bucket indices (a, d)."""
        z = grids.z(0, self.centres[idx])
        params = np.concatenate([self.net.decode(z[s:s + self.batch]) for s in range(0, len(z), self.batch)])
        return self.family(groups, *self.model.likelihood.coding_params(params))

    @staticmethod
    def _schedule(n: int, ramp: list[int]) -> list[int]:
        """Items per step: before step t the lane count grows by ramp[t] (0 once the ramp is over), each step codes
        min(lanes, items left)."""
        steps, i, lanes = [], 0, 0
        for t in range(n):
            if i >= n:
                break
            lanes += ramp[t] if t < len(ramp) else 0
            if lanes < 1:
                raise ValueError
            steps.append(min(lanes, n - i))
            i += steps[-1]
        return steps

    # --- coding -------------------------------------------------------------------------------------------------------
    def encode(self, x: np.ndarray, progress: Callable[[int], None] | None = None,
               extra_meta: dict[str, Any] | None = None) -> bytes:
        """Container bytes for items x (n, …) of integer symbols; items are decoded back in the same order."""
        x = self._prepare(np.asarray(x))
        n, b, d = len(x), self.latent_bits, self.d
        if n > MAX_ITEMS:
            raise DataError(f"{n} items is more than one file holds ({MAX_ITEMS})")
        m, w, feats = self._posterior(x)
        G, L = self.groups, self.net.layers
        grids = self._fit_grids(m, feats)
        tail = Tail(virtual=True)
        lanes = Lanes(min(self.lanes, max(n, 1)), tail, G)
        need = 2 * G + math.ceil(L * d * b / 32)  # words a new slot's start states and first latent pops may take
        ramp: list[int] = []
        i, amax = 0, 0
        while i < n:
            grow = min(self.lanes, n - i, max(amax, 1, tail.available() // need))
            if grow > amax:
                lanes.start(range(amax, grow))
            if amax < self.lanes:
                ramp.append(max(grow, amax) - amax)
            amax = max(grow, amax)
            a = min(amax, n - i)
            sl = slice(i, i + a)
            idx = [self._pop_gauss(lanes, a, m[sl], w[sl], range(d))]  # z̄_L, then z̄_{L−1} … z̄_1 top-down
            priors = []
            for j in reversed(range(L - 1)):
                t_j, prior = self._prior_step(j, idx[0], grids)
                post = self._posterior_step(j, t_j, feats[j][sl], grids)
                idx.insert(0, self._pop_gauss(lanes, a, *post, range(d)))
                priors.insert(0, prior)
            c, f = self._pixels(idx[0], G, grids).intervals(x[sl])
            c, f = to_rows(c.astype(np.uint64), G), to_rows(f.astype(np.uint64), G)
            for r in range(len(c)):
                g = row_groups(self.D, G, r)
                lanes.push(a, c[r, :g], f[r, :g], g)
            for j in range(L - 1):  # z̄_1 … z̄_{L−1} with their priors, then z̄_L with P(z_L) = 2^-b per dimension
                self._push_gauss(lanes, a, idx[j], *priors[j], range(d))
            for k in range(d):
                lanes.push_uniform(a, idx[-1][:, k], b)
            i += a
            if progress is not None:
                progress(a)
        lanes.merge(amax)
        lanes.push_numbers([len(ramp), *ramp])  # the schedule, on top: the decoder reads it first
        lanes.seal()
        tail.pad(math.ceil(n / 32))  # at least one bit per item: what the decoder's size check assumes
        payload = tail.contents().astype("<u4").tobytes()
        meta = {"n": n, "item_shape": [self.D], "latent_bits": b, "likelihood": self.model.config.likelihood,
                "groups": G, "data_digest": _digest(x), **grids.to_meta(), **(extra_meta or {})}
        return pack(CODEC, self.fingerprint, meta, payload, version=VERSION)

    def _header(self, box: Container, source: str) -> tuple[int, int]:
        """(n, groups) from a bits-back header, every field checked against the payload first."""
        meta = box.meta if isinstance(box.meta, dict) else {}
        try:
            n, bits, lik, _ = _int(meta["n"]), _int(meta["latent_bits"]), str(meta["likelihood"]), str(meta["data_digest"])
            groups = _int(meta["groups"])
        except (KeyError, TypeError, ValueError, OverflowError):
            raise CorruptFileError(f"{source}: corrupt bits-back header") from None
        if bits != self.latent_bits or lik != self.model.config.likelihood:
            raise CorruptFileError(f"{source}: coded with latent_bits={bits}/{lik}, this codec uses "
                                   f"{self.latent_bits}/{self.model.config.likelihood}")
        if (not 0 <= n <= min(MAX_ITEMS, 8 * len(box.payload)) or n * self.D > MAX_VALUES or len(box.payload) % 4
                or not 1 <= groups <= MAX_GROUPS):
            raise CorruptFileError(f"{source}: corrupt bits-back header (n={n} for a {len(box.payload)}-byte payload)")
        return n, groups

    def _read_schedule(self, lanes: Lanes, n: int, words: int, source: str) -> list[int]:
        """The lane schedule from the top of the stream, checked: ≤ n steps, ≥ 1 lane, ≤ MAX_LANES and ≤ words."""
        (count,) = lanes.pop_numbers(1)
        if count > n:
            raise CorruptFileError(f"{source}: corrupt bits-back stream (lane schedule of {count} steps for {n} items)")
        ramp = lanes.pop_numbers(count)
        total = sum(ramp)
        try:
            steps = self._schedule(n, ramp) if total <= min(MAX_LANES, words) else None
        except ValueError:
            steps = None
        if steps is None:
            raise CorruptFileError(f"{source}: corrupt bits-back stream (impossible lane schedule)")
        return steps

    def decode(self, data: bytes | Container, source: str = "file",
               progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Items (n, D) as int32 symbols, exactly those that were encoded; refuses another model's file."""
        box = data if isinstance(data, Container) else unpack(data, source)
        if box.codec == CODEC and box.version < VERSION:
            raise CorruptFileError(f"{source}: a bits-back file of container version {box.version} (the earlier "
                                   "one-stream coder); this vaekit decodes version 3: re-encode the data")
        check_model(box, self.fingerprint, CODEC, source)
        n, G = self._header(box, source)
        b, d, L = self.latent_bits, self.d, self.net.layers
        grids = LayerGrids.from_meta(box.meta, L, d, source)
        words = np.frombuffer(box.payload, dtype="<u4")
        tail = Tail(words)
        lanes = Lanes(1, tail, G)
        try:
            lanes.unseal()
            steps = self._read_schedule(lanes, n, len(words) // G, source)
            amax = max(steps, default=0)
            lanes.resize(amax)
            lanes.unmerge(amax)
        except StreamExhausted:
            raise CorruptFileError(f"{source}: corrupt bits-back stream (it ends early)") from None
        out = np.empty((n, self.D), np.uint8 if self.model.likelihood.n_symbols() <= 256 else np.int32)
        starts = np.concatenate([[0], np.cumsum(steps)]).astype(np.int64)
        firsts = np.maximum.accumulate(np.concatenate([[0], steps])).astype(np.int64)  # lanes started before step t
        try:
            for t in reversed(range(len(steps))):
                a, sl = steps[t], slice(int(starts[t]), int(starts[t]) + steps[t])
                top = np.empty((a, d), np.int64)
                for k in reversed(range(d)):
                    top[:, k] = lanes.pop_uniform(a, b)
                idx, ts = [top], []
                for j in reversed(range(L - 1)):  # z̄_{L−1} … z̄_1 from their priors, each given the layer above
                    t_j, prior = self._prior_step(j, idx[0], grids)
                    idx.insert(0, self._pop_gauss(lanes, a, *prior, reversed(range(d))))
                    ts.insert(0, t_j)
                fam = self._pixels(idx[0], G, grids)
                xs = np.empty((a, self.D), np.int64)
                for r in reversed(range(-(-self.D // G))):
                    sym = fam.pop(lanes, a, r)
                    xs[:, r * G:r * G + len(sym)] = sym.T
                m, w, feats = self._posterior(xs)
                for j in range(L - 1):  # the posteriors back, bottom first (the encoder popped them top first)
                    post = self._posterior_step(j, ts[j], feats[j], grids)
                    self._push_gauss(lanes, a, idx[j], *post, reversed(range(d)))
                self._push_gauss(lanes, a, idx[-1], m, w, reversed(range(d)))
                lanes.end(range(int(firsts[t]), max(int(firsts[t]), a)))
                out[sl] = xs
                if progress is not None:
                    progress(a)
        except StreamExhausted:
            raise CorruptFileError(f"{source}: corrupt bits-back stream (it ends early or a lane ends in an "
                                   "impossible state)") from None
        if not lanes.at_rest() or not tail.ends_on_virtual_words():
            raise CorruptFileError(f"{source}: the coded stream does not end where it should (corrupt or wrong model)")
        if _digest(out) != box.meta["data_digest"]:
            raise CorruptFileError(f"{source}: decoded data fail the checksum (the decoder diverged)")
        return out.astype(np.int32)

    def neg_elbo_bits(self, x: np.ndarray, n_samples: int = 1, seed: int = 0) -> float:
        """Monte-Carlo −ELBO in bits for the items (what the coder should approach)."""
        x = self._prepare(np.asarray(x))
        g = torch.Generator().manual_seed(seed)
        total = 0.0
        xt = torch.from_numpy(self.model.likelihood.symbols_to_model(x))
        if self.model.config.arch in ("conv", "resnet"):
            xt = xt.reshape(len(x), *self.model.config.input_shape)
        with torch.no_grad():
            for s in range(0, len(x), 1000):
                xb = xt[s:s + 1000]
                out = self.model(xb, k=n_samples, generator=g)
                log_px = self.model.log_px(out.params, xb.flatten(1))
                if self.net.layers > 1:  # Monte Carlo: log q(z|x) − log p(z) over every layer
                    kl = (out.log_qz - out.log_pz).mean(0)
                else:
                    kl = self.model.prior.kl(out.mu, out.logvar).sum(-1)
                total += float((-(log_px.mean(0) - kl)).sum())
        return total / math.log(2)


def auto_batch(model: VAE, budget: int = 1 << 21) -> int:
    """Rows per network call: ⌊budget / widest activation⌋ clamped to [16, 4096]."""
    widest = int(getattr(model.decoder, "widest", 0) or 1)
    return max(16, min(4096, budget // widest))


def _int(v: Any, signed: bool = False) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or (not signed and v < 0) or abs(v) > 1 << 40:
        raise ValueError
    return v


def _digest(x: np.ndarray) -> str:
    raw = x.astype(np.uint8 if x.max(initial=0) < 256 else np.int32).tobytes()
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t
