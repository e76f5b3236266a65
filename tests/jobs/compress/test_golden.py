"""Bits-back determinism: golden .vkz files decode to their originals and re-encode to the same bytes; a trained
full-size MNIST model codes 1000 items to the same bytes whatever the thread count, network batch size or process."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import ROOT, SHARED
from vaekit.core.checkpoint import load_model
from vaekit.errors import CorruptFileError
from vaekit.jobs.compress import fixedpoint as fx
from vaekit.jobs.compress.bitsback import BitsBackCodec, auto_batch
from vaekit.jobs.compress.container import pack, unpack

GOLDEN = Path(__file__).resolve().parent / "golden"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _codec(name: str, **kw: object) -> BitsBackCodec:
    entry = MANIFEST["files"][name]
    model, _ = load_model(GOLDEN / entry["model"])
    return BitsBackCodec(model, latent_bits=entry["latent_bits"], lanes=entry["lanes"], groups=entry["groups"], **kw)


def test_fixed_point_tables_match_their_pinned_digests():
    assert fx.table_digests() == MANIFEST["tables"]


@pytest.mark.parametrize("name", sorted(MANIFEST["files"]))
def test_golden_file_decodes_to_its_originals_and_re_encodes_to_the_same_bytes(name: str):
    entry = MANIFEST["files"][name]
    blob = (GOLDEN / f"{name}.vkz").read_bytes()
    assert _sha(blob) == entry["vkz_sha256"]
    codec = _codec(name)
    x = codec.decode(blob)
    assert x.shape[0] == entry["n"] and _sha(x.astype(np.uint8).tobytes()) == entry["items_sha256"]
    if isinstance(entry["source"], list) and (SHARED / entry["source"][0]).exists():
        file, key, n = entry["source"]
        assert np.array_equal(x, np.load(SHARED / file)[key][:n].reshape(n, -1))
    assert codec.encode(x) == blob


def test_a_one_unit_change_in_a_table_changes_the_golden_bytes(monkeypatch):
    """The golden comparison can fail: σ̃ off by 2^-32 on part of its range gives other bytes (or a refusal)."""
    blob = (GOLDEN / "mnist8_100.vkz").read_bytes()
    codec = _codec("mnist8_100")
    x = codec.decode(blob)
    table, slope = (t.copy() for t in fx._slopes("sigmoid"))
    table[len(table) // 2 - 2000:len(table) // 2 + 2000] += 1
    slope[:-1] = np.diff(table)
    original = fx._slopes
    monkeypatch.setattr(fx, "_slopes", lambda name: (table, slope) if name == "sigmoid" else original(name))
    assert codec.encode(x) != blob
    with pytest.raises(CorruptFileError):
        codec.decode(blob)


_CHILD = """
import sys, numpy as np, torch
torch.set_num_threads(1)
from vaekit.core.checkpoint import load_model
from vaekit.jobs.compress.bitsback import BitsBackCodec
d = sys.argv[1]
model, _ = load_model(sys.argv[2])
codec = BitsBackCodec(model, lanes=256, batch=113)
blob = open(d + "/a.vkz", "rb").read()
np.save(d + "/y.npy", codec.decode(blob))
open(d + "/b.vkz", "wb").write(codec.encode(np.load(d + "/x.npy")))
"""


def test_same_bytes_across_threads_batch_sizes_and_processes(tmp_path: Path):
    """1000 items of a trained 784-64-16 logistic model: 2 threads / batch 1000 here, 1 thread / batch 37 here, and
    1 thread / batch 113 in a fresh process give one byte string, and the fresh process decodes it exactly."""
    model, _ = load_model(GOLDEN / "mnist8")
    with torch.no_grad():
        x = model.likelihood.to_uint8(model.sample(1000, torch.Generator().manual_seed(0), mean=False))
    x = x.reshape(1000, -1)
    torch.set_num_threads(2)
    steps: list[int] = []
    blob = BitsBackCodec(model, lanes=256, batch=1000).encode(x, progress=steps.append)
    assert len(steps) > 3 and max(steps) == 256  # a ramp, then full steps of 256 items side by side
    torch.set_num_threads(1)
    assert BitsBackCodec(model, lanes=256, batch=37).encode(x) == blob
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "a.vkz").write_bytes(blob)
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    r = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path), str(GOLDEN / "mnist8")], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert np.array_equal(np.load(tmp_path / "y.npy"), x)
    assert (tmp_path / "b.vkz").read_bytes() == blob


def test_conv_model_gives_the_same_bytes_for_any_batch_and_thread_count():
    """The conv net's float64 convolutions are exact too: batch 7 / 1 thread, the automatic batch / 2 threads and
    4096 rows give the golden bytes; the automatic batch keeps the widest map within 2^21 values."""
    model, _ = load_model(GOLDEN / "mnist8conv")
    assert auto_batch(model) == 2 ** 21 // model.decoder.widest < 4096
    blob = (GOLDEN / "mnist8conv_100.vkz").read_bytes()
    x = _codec("mnist8conv_100").decode(blob)
    before = torch.get_num_threads()
    try:
        for threads, batch in ((1, 7), (2, 0), (1, 4096)):
            torch.set_num_threads(threads)
            assert _codec("mnist8conv_100", batch=batch).encode(x) == blob, (threads, batch)
    finally:
        torch.set_num_threads(before)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["mnist8_100", "mnist8conv_100"])
def test_gpu_networks_give_the_cpu_bytes(name: str):
    blob = (GOLDEN / f"{name}.vkz").read_bytes()
    x = _codec(name).decode(blob)
    assert _codec(name, device="cuda").encode(x) == blob


def test_old_files_and_damaged_streams_are_refused_with_one_line():
    blob = (GOLDEN / "cat5_40.vkz").read_bytes()
    box, codec = unpack(blob), _codec("cat5_40")
    with pytest.raises(CorruptFileError, match="container version 2"):
        codec.decode(pack(box.codec, box.fingerprint, box.meta, box.payload, version=2))
    with pytest.raises(CorruptFileError, match="header"):
        codec.decode(pack(box.codec, box.fingerprint, {**box.meta, "n": 10 ** 6}, box.payload, version=3))
    rng = np.random.default_rng(0)
    for cut in (4, 8, len(box.payload) // 2, len(box.payload) - 4):  # resealed: only the stream itself is wrong
        for payload in (box.payload[cut:], box.payload[:-cut], bytes(rng.integers(0, 256, len(box.payload), np.uint8))):
            with pytest.raises(CorruptFileError):
                codec.decode(pack(box.codec, box.fingerprint, box.meta, payload, version=3))


def test_cross_device_harness_checks_decode_and_re_encode(tmp_path: Path):
    """benchmarks/cross_device.py (the GPU run's cross-machine check): files made by ``prepare`` pass ``check`` on
    this CPU, and a file with one byte changed is caught (as a refusal or as a mismatch), so the check can fail."""
    from tests.helpers import load_benchmark

    cross = load_benchmark("cross_device")
    x = (np.arange(30 * 784) % 251).reshape(30, 784).astype(np.uint8)
    np.savez(tmp_path / "m.npz", x_test=x)
    cross.prepare(tmp_path / "d", 30, tmp_path / "m.npz")
    res = cross.check(tmp_path / "d", ["cpu"])
    assert res["all_equal"] and len(res["rows"]) == 2
    blob = bytearray((tmp_path / "d" / "mnist8.vkz").read_bytes())
    blob[len(blob) // 2] ^= 1
    (tmp_path / "d" / "mnist8.vkz").write_bytes(bytes(blob))
    with pytest.raises(CorruptFileError):
        cross.check(tmp_path / "d", ["cpu"])
