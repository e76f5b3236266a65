"""Lossless bits-back coding with a trained VAE (BB-ANS, Townsend, Bird & Barber 2019).

Per item x, on an ANS stack: pop z ~ q(z|x) (decode with the posterior), push x with p(x|z), push z with p(z).
The net cost is −log p(x|z) − log p(z) + log q(z|x), i.e. −ELBO in expectation, plus a small discretization loss.
Latents are discretized into 2^b buckets per dimension of equal mass under the N(0, 1) prior, so p(z) is
uniform over buckets and q(bucket) = Φ((e_{i+1} − μ)/σ) − Φ((e_i − μ)/σ) with e_i = Φ⁻¹(i / 2^b).

Determinism: the network runs in float64 with batch size 1 on both sides and its outputs are rounded to a
2^-20 grid before any probability table is built, so encoder and decoder build identical tables; the file also
carries a BLAKE2b digest of the raw data, so a decoder that somehow diverged fails loudly instead of returning
wrong data. Decoding checks that the stack never runs below its initial seed words (a crafted file cannot make
it spin on an empty stack) and that exactly the seed words remain at the end.
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
from scipy.special import ndtr, ndtri

from vaekit.core.likelihoods import LIKELIHOODS
from vaekit.core.model import VAE
from vaekit.errors import CorruptFileError, DataError, VaekitError
from vaekit.jobs.compress.container import (
    Container,
    check_model,
    fingerprint,
    pack,
    unpack,
)

CODEC = "bitsback"
ROUND = 2.0 ** 20
SEED_WORDS = 32  # 1024 initial bits: enough to pop the first latent at any supported precision
MAX_ITEMS = 10 ** 8


def _constriction() -> Any:
    try:
        import constriction
    except ImportError:  # pragma: no cover - constriction is a core dependency of the compress extra
        raise VaekitError("bits-back coding needs constriction: pip install 'vaekit[compress]'") from None
    return constriction


def _round(t: torch.Tensor) -> np.ndarray:
    """Network output → float64 on a 2^-20 grid (identical tables on both sides)."""
    return np.round(t.detach().double().numpy() * ROUND) / ROUND


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
    """BB-ANS over a trained :class:`~vaekit.core.model.VAE` with 2^latent_bits prior-equal-mass buckets per latent."""

    def __init__(self, model: VAE, config: dict[str, Any] | None = None, latent_bits: int = 12) -> None:
        if model.likelihood.coding is None:
            able = ", ".join(n for n in LIKELIHOODS.names() if LIKELIHOODS.get(n).coding)
            raise VaekitError(f"bits-back coding needs a discrete likelihood ({able}); this model "
                              f"uses {model.config.likelihood!r}")
        if model.config.n_conditions:
            raise VaekitError("bits-back coding of a conditional model is not supported (labels are not coded)")
        if not 4 <= latent_bits <= 16:
            raise VaekitError(f"latent_bits must be in 4..16, got {latent_bits}")
        self.model = copy.deepcopy(model).double().eval()
        self.config = config if config is not None else model.config.to_dict()
        self.fingerprint = fingerprint(model, self.config)
        self.latent_bits = latent_bits
        n = 1 << latent_bits
        self.n_buckets = n
        self.edges = ndtri(np.arange(n + 1) / n)  # e_0 = −∞ … e_n = +∞
        self.centres = ndtri((np.arange(n) + 0.5) / n)
        self.d = model.config.latent_dim
        self.D = int(np.prod(model.config.input_shape))
        c = _constriction()
        self._uniform = c.stream.model.Uniform(n)
        self._cat = c.stream.model.Categorical(perfect=False)
        self._bern = c.stream.model.Bernoulli(perfect=False)

    # --- model pieces -------------------------------------------------------------------------
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

    def _model_input(self, xi: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(self.model.likelihood.symbols_to_model(xi))[None]
        return x.reshape(1, *self.model.config.input_shape) if self.model.config.arch == "conv" else x

    def _posterior(self, xi: np.ndarray) -> np.ndarray:
        """q(bucket) per latent dimension, (d, 2^b) float64."""
        with torch.no_grad():
            mu, logvar = self.model.encode(self._model_input(xi))
        mu, sd = _round(mu[0])[:, None], np.exp(0.5 * _round(logvar[0]))[:, None]
        cdf = ndtr((self.edges[None, :] - mu) / sd)
        return np.maximum(np.diff(cdf, axis=1), 0.0)

    def _likelihood(self, idx: np.ndarray) -> tuple[Any, np.ndarray]:
        """(constriction model, parameters) of p(x | z = bucket centres[idx]) for one item."""
        z = torch.from_numpy(self.centres[idx])[None]
        with torch.no_grad():
            params = self.model.decode(z)[0]  # (P, D)
        lik = self.model.likelihood
        return (self._bern if lik.coding == "bernoulli" else self._cat), lik.symbol_probs(params, _round)

    # --- coding -------------------------------------------------------------------------------
    def _seed_words(self) -> np.ndarray:
        words = np.random.default_rng(0x5EED).integers(0, 2 ** 32, SEED_WORDS, dtype=np.uint64).astype(np.uint32)
        words[-1] |= np.uint32(1 << 31)  # a full top word: exactly 32·SEED_WORDS valid bits
        return words

    def encode(self, x: np.ndarray, progress: Callable[[int], None] | None = None,
               extra_meta: dict[str, Any] | None = None) -> bytes:
        """Container bytes for items x (n, …) of integer symbols; items are decoded back in the same order."""
        c = _constriction()
        x = self._prepare(np.asarray(x))
        n = len(x)
        if n > MAX_ITEMS:
            raise DataError(f"{n} items is more than one file holds ({MAX_ITEMS})")
        seed = self._seed_words()
        coder = c.stream.stack.AnsCoder(seed.copy())
        floor = coder.num_valid_bits()
        for i in range(n):
            q = self._posterior(x[i])
            idx = coder.decode(self._cat, q)
            model, p = self._likelihood(idx)
            coder.encode_reverse(x[i], model, p)
            coder.encode_reverse(idx.astype(np.int32), self._uniform)
            if coder.num_valid_bits() <= floor:  # the decoder relies on this invariant to stop crafted files
                raise VaekitError(f"item {i} compressed to a non-positive net cost; raise latent_bits")
            if progress is not None:
                progress(i)
        payload = coder.get_compressed().astype("<u4").tobytes()
        meta = {"n": n, "item_shape": [int(s) for s in x.shape[1:]] if x.ndim > 2 else [self.D],
                "latent_bits": self.latent_bits, "likelihood": self.model.config.likelihood,
                "data_digest": hashlib.blake2b(x.astype(np.uint8 if x.max(initial=0) < 256 else np.int32)
                                               .tobytes(), digest_size=16).hexdigest(), **(extra_meta or {})}
        return pack(CODEC, self.fingerprint, meta, payload)

    def decode(self, data: bytes | Container, source: str = "file",
               progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Items (n, D) as int32 symbols, exactly those that were encoded; refuses another model's file."""
        c = _constriction()
        box = data if isinstance(data, Container) else unpack(data, source)
        check_model(box, self.fingerprint, CODEC, source)
        meta = box.meta if isinstance(box.meta, dict) else {}
        try:
            n, bits, lik, digest = int(meta["n"]), int(meta["latent_bits"]), str(meta["likelihood"]), meta["data_digest"]
        except (KeyError, TypeError, ValueError, OverflowError):
            raise CorruptFileError(f"{source}: corrupt bits-back header") from None
        if bits != self.latent_bits or lik != self.model.config.likelihood:
            raise CorruptFileError(f"{source}: coded with latent_bits={bits}/{lik}, this codec uses "
                                   f"{self.latent_bits}/{self.model.config.likelihood}")
        if not 0 <= n <= min(MAX_ITEMS, 8 * len(box.payload)) or len(box.payload) % 4:
            raise CorruptFileError(f"{source}: corrupt bits-back header (n={n} for a {len(box.payload)}-byte payload)")
        words = np.frombuffer(box.payload, dtype="<u4").astype(np.uint32)
        if len(words) < SEED_WORDS or words[-1] == 0:
            raise CorruptFileError(f"{source}: corrupt bits-back stream (too short or not ANS-terminated)")
        floor = 32 * SEED_WORDS
        rows: list[np.ndarray] = []
        try:
            coder = c.stream.stack.AnsCoder(words)
            for i in range(n):
                if coder.num_valid_bits() <= floor:
                    raise CorruptFileError(f"{source}: the coded stream ends after {i} of {n} items")
                idx = coder.decode(self._uniform, self.d)
                model, p = self._likelihood(idx)
                xi = np.asarray(coder.decode(model, p), dtype=np.int32)
                coder.encode_reverse(idx.astype(np.int32), self._cat, self._posterior(xi))
                rows.append(xi)
                if progress is not None:
                    progress(i)
            rest = coder.get_compressed()
        except (ValueError, RuntimeError, OverflowError) as e:  # constriction rejects an invalid stream
            raise CorruptFileError(f"{source}: corrupt bits-back stream ({e})") from None
        rows.reverse()  # the stack returns the last-encoded item first
        if not np.array_equal(rest, self._seed_words()):
            raise CorruptFileError(f"{source}: the coded stream does not end where it should (corrupt or wrong model)")
        out = np.stack(rows) if rows else np.zeros((0, self.D), dtype=np.int32)
        raw = out.astype(np.uint8 if out.max(initial=0) < 256 else np.int32).tobytes()
        if hashlib.blake2b(raw, digest_size=16).hexdigest() != digest:
            raise CorruptFileError(f"{source}: decoded data fail the checksum (the decoder diverged)")
        return out

    def neg_elbo_bits(self, x: np.ndarray, n_samples: int = 1, seed: int = 0) -> float:
        """Monte-Carlo −ELBO in bits for the items (what the coder should approach)."""
        x = self._prepare(np.asarray(x))
        g = torch.Generator().manual_seed(seed)
        total = 0.0
        xt = torch.cat([self._model_input(xi) for xi in x]) if len(x) else torch.zeros(0)
        with torch.no_grad():
            for s in range(0, len(x), 1000):
                xb = xt[s:s + 1000]
                out = self.model(xb, k=n_samples, generator=g)
                target = xb.flatten(1)
                log_px = self.model.log_px(out.params, target)
                kl = self.model.prior.kl(out.mu, out.logvar).sum(-1)
                total += float((-(log_px.mean(0) - kl)).sum())
        return total / math.log(2)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t
