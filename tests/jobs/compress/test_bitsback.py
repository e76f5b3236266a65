"""The .vkz container and bits-back (BB-ANS) lossless coding: exact round trips, refusals, fuzzing slice."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import mutated_containers
from tests.warm_cli import WarmCli
from vaekit.core.checkpoint import save_model
from vaekit.core.config import ModelConfig
from vaekit.core.model import VAE
from vaekit.errors import CorruptFileError, DataError, VaekitError, WrongModelError
from vaekit.jobs.compress.bitsback import BitsBackCodec
from vaekit.jobs.compress.container import pack, unpack


def _model(likelihood: str = "bernoulli", seed: int = 0, **kw: object) -> VAE:
    torch.manual_seed(seed)
    return VAE(ModelConfig(input_shape=(16,), latent_dim=3, hidden=(16,), likelihood=likelihood, **kw)).eval()


def _binary(n: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    protos = rng.random((2, 16)) < 0.4
    return (protos[rng.integers(0, 2, n)] ^ (rng.random((n, 16)) < 0.1)).astype(np.uint8)


@pytest.mark.parametrize("codec", ["c", "bitsback", "vaekit-lossy-image"])
@pytest.mark.parametrize("version", [1, 2])
def test_container_round_trip_and_every_truncation_is_refused(codec, version):
    fp = bytes(range(1, 17))
    blob = pack(codec, fp, {"n": 3, "s": "é"}, b"payload!", version=version)
    box = unpack(blob)
    assert (box.codec, box.meta, box.payload, box.version) == (codec, {"n": 3, "s": "é"}, b"payload!", version)
    assert box.fingerprint == (fp if version == 1 else fp[:8])
    for cut in range(len(blob)):
        with pytest.raises(CorruptFileError):
            unpack(blob[:cut])
    with pytest.raises(CorruptFileError, match="trailing"):
        unpack(blob + b"\x00")
    with pytest.raises(CorruptFileError, match="magic"):
        unpack(b"PK\x03\x04" + blob[4:])


def test_container_v2_header_is_compact_and_lengths_are_bounded():
    blob = pack("vaekit-lossy-image", bytes(16), [28, 28, 1, 0], b"")
    assert len(blob) == 6 + 2 + 1 + 8 + 1 + 1 + len(b"[28,28,1,0]") + 8  # 38 bytes of overhead on a 28×28 image
    # a declared payload length of 2^42 (6-byte varint) is refused before anything is allocated
    huge = blob[:18] + b"\x80\x80\x80\x80\x80\x40" + blob[19:]
    with pytest.raises(CorruptFileError, match="out of range"):
        unpack(huge)
    endless = blob[:18] + b"\x80" * 12
    with pytest.raises(CorruptFileError, match="varint"):
        unpack(endless)


def test_container_refuses_bit_flips_and_other_versions():
    blob = bytearray(pack("c", b"\x01" * 16, {}, bytes(range(50))))
    rng = np.random.default_rng(0)
    for _ in range(300):
        b = bytearray(blob)
        i = int(rng.integers(len(b)))
        b[i] ^= 1 << int(rng.integers(8))
        with pytest.raises(CorruptFileError):
            unpack(bytes(b))
    v4 = bytearray(blob)
    v4[6] = 4
    with pytest.raises(CorruptFileError, match="version 4"):
        unpack(bytes(v4))


@pytest.mark.parametrize("likelihood", ["bernoulli", "logistic", "categorical"])
def test_bits_back_round_trip_is_exact(likelihood: str):
    kw = {"n_categories": 5} if likelihood == "categorical" else {}
    m = _model(likelihood, **kw)
    rng = np.random.default_rng(1)
    hi = {"bernoulli": 2, "logistic": 256, "categorical": 5}[likelihood]
    x = rng.integers(0, hi, (12, 16)).astype(np.uint8)
    codec = BitsBackCodec(m, latent_bits=8)
    blob = codec.encode(x)
    y = BitsBackCodec(_model(likelihood, **kw), latent_bits=8).decode(blob)  # a fresh codec: same weights
    assert np.array_equal(y, x)


def _trained(x: np.ndarray, steps: int = 300, **kw: object) -> VAE:
    """A briefly trained model: its aggregate posterior is close to the prior, as bits-back assumes."""
    from vaekit.core.objectives import ELBO

    m = _model(**kw).train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    xt = torch.from_numpy(x.astype(np.float32))
    for _ in range(steps):
        opt.zero_grad()
        ELBO()(m, xt).loss.backward()
        opt.step()
    return m.eval()


def test_rate_is_close_to_the_negative_elbo():
    """Net cost per item ≈ −ELBO (bits); fixed costs (initial bits, header) are subtracted. One lane gives the
    coder's own rate; many lanes (4 per item slot) add only their schedule and state hand-over (a few bits per
    lane) and the first slot's start states (≈ 50 initial bits per extra lane)."""
    x = _binary(200)
    m = _trained(x)
    codec = BitsBackCodec(m, latent_bits=12, lanes=1, groups=1)
    empty = len(codec.encode(x[:0]))
    bits = 8 * (len(codec.encode(x)) - empty)
    neg_elbo = codec.neg_elbo_bits(x, n_samples=50)
    assert 0.97 * neg_elbo < bits < 1.03 * neg_elbo + 64
    many = 8 * (len(BitsBackCodec(m, latent_bits=12, lanes=64).encode(x)) - empty)
    assert bits <= many < 1.05 * bits + 4 * 64


@pytest.mark.parametrize("layers,likelihood", [(2, "bernoulli"), (3, "logistic")])
def test_hierarchical_round_trip_is_exact_for_any_batch_and_lane_count(layers: int, likelihood: str):
    """Plain bits-back per layer over a ladder VAE: exact, and the bytes do not depend on the network batch."""
    m = _model(likelihood, stochastic_layers=layers)
    hi = {"bernoulli": 2, "logistic": 256}[likelihood]
    x = np.random.default_rng(2).integers(0, hi, (30, 16)).astype(np.uint8)
    blob = BitsBackCodec(m, latent_bits=8, lanes=4).encode(x)
    assert BitsBackCodec(m, latent_bits=8, lanes=4, batch=3).encode(x) == blob
    fresh = BitsBackCodec(_model(likelihood, stochastic_layers=layers), latent_bits=8)
    assert np.array_equal(fresh.decode(blob), x)
    assert np.array_equal(fresh.decode(BitsBackCodec(m, latent_bits=8, lanes=64).encode(x)), x)
    with pytest.raises(WrongModelError):  # the one-layer model of the same seed is another model
        BitsBackCodec(_model(likelihood), latent_bits=8).decode(blob)


def test_models_the_coder_cannot_evaluate_are_refused_with_one_line():
    for kw, match in ((dict(prior="mog"), "prior 'mog'"), (dict(posterior="iaf"), "posterior 'iaf'"),
                      (dict(stochastic_layers=2, prior="vampprior", prior_components=3), "prior 'vampprior'")):
        with pytest.raises(VaekitError, match=match):
            BitsBackCodec(_model(**kw))


def test_wrong_model_bad_symbols_and_crafted_headers_are_refused():
    m = _model()
    x = _binary(8)
    codec = BitsBackCodec(m, latent_bits=8)
    blob = codec.encode(x)
    with pytest.raises(WrongModelError, match="different model"):
        BitsBackCodec(_model(seed=1), latent_bits=8).decode(blob)
    with pytest.raises(DataError, match="0..1"):
        codec.encode(x * 3)
    with pytest.raises(DataError, match="16 values"):
        codec.encode(np.zeros((2, 15), np.uint8))
    with pytest.raises(VaekitError, match="discrete likelihood"):
        BitsBackCodec(_model("gaussian"))
    box = unpack(blob)
    for meta in ({**box.meta, "n": 10 ** 9}, {**box.meta, "n": len(x) + 5}, {**box.meta, "latent_bits": 9},
                 {k: v for k, v in box.meta.items() if k != "n"}):
        with pytest.raises(CorruptFileError):
            codec.decode(pack(box.codec, box.fingerprint, meta, box.payload))
    flipped = bytearray(box.payload)
    flipped[len(flipped) // 2] ^= 0x10  # a resealed (valid-checksum) but altered stream
    with pytest.raises(CorruptFileError):
        codec.decode(pack(box.codec, box.fingerprint, box.meta, bytes(flipped)))


def test_fuzz_slice_mutated_and_resealed_files_give_only_documented_errors():
    m = _model()
    codec = BitsBackCodec(m, latent_bits=6)
    x = _binary(3)
    blob = codec.encode(x)
    decoded_ok = 0
    for data, _ in mutated_containers(blob, 3000, seed=7):
        try:
            y = codec.decode(data)
        except (CorruptFileError, WrongModelError):
            continue
        assert np.array_equal(y, x)  # only possible when the mutation left the file unchanged in effect
        decoded_ok += 1
    assert decoded_ok < 300


@pytest.mark.slow
def test_cli_lossless_round_trip_across_processes_and_refusals(tmp_path: Path, warm_cli: WarmCli):
    """Encode and decode in separate processes (forked children of the warm server, tests/warm_cli.py)."""
    def _run(*args: object) -> subprocess.CompletedProcess[str]:
        return warm_cli.run(args, timeout=300)

    m = _model()
    save_model(m, tmp_path / "model", {})
    x = _binary(30).reshape(30, 4, 4)
    np.save(tmp_path / "x.npy", x)
    r = _run("compress", tmp_path / "x.npy", "-o", tmp_path / "x.vkz", "--model", tmp_path / "model", "--lossless",
             "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "bits/dim" in r.stdout
    r = _run("decompress", tmp_path / "x.vkz", "-o", tmp_path / "y.npy", "--no-progress")  # model from the header
    assert r.returncode == 0, r.stderr
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == x.dtype and np.array_equal(y, x)
    blob = (tmp_path / "x.vkz").read_bytes()
    (tmp_path / "cut.vkz").write_bytes(blob[:-7])
    r = _run("decompress", tmp_path / "cut.vkz", "-o", tmp_path / "z.npy")
    assert r.returncode == 2 and "truncated" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "z.npy").exists()
    save_model(_model(seed=3), tmp_path / "other", {})
    r = _run("decompress", tmp_path / "x.vkz", "-o", tmp_path / "z.npy", "--model", tmp_path / "other")
    assert r.returncode == 2 and "different model" in r.stderr
    r = _run("compress", tmp_path / "x.npy", "-o", tmp_path / "x.npy", "--model", tmp_path / "model", "--lossless")
    assert r.returncode == 2 and "refusing to overwrite" in r.stderr
    assert np.array_equal(np.load(tmp_path / "x.npy"), x)
