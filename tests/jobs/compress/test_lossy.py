"""Lossy learned image codec: round trips, sizes, channels, rate vs estimate, corrupt files, cross-process decode."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import run_cli
from vaekit.errors import (
    CheckpointError,
    CorruptFileError,
    DataError,
    VaekitError,
    WrongModelError,
)
from vaekit.files import document_digest
from vaekit.jobs.compress.container import pack, unpack
from vaekit.jobs.compress.entropy import (
    TOTAL,
    decode_latents,
    encode_latents,
    table_bits,
)
from vaekit.jobs.compress.lossy import (
    CODEC,
    ImageCodec,
    compress_image,
    compress_image_file,
    decompress_image,
    decompress_image_file,
    load_codec,
    pad_image,
    save_codec,
)
from vaekit.jobs.compress.lossy_train import train_codec
from vaekit.jobs.compress.metrics import bd_rate, bd_rate_interp, ms_ssim, psnr
from vaekit.jobs.compress.rd_model import RateDistortionLoss

ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")


def _smooth(rng: np.random.Generator, h: int, w: int, c: int) -> np.ndarray:
    """Smooth random images (low-frequency sinusoids) in uint8."""
    yy, xx = np.mgrid[0:h, 0:w] / 8.0
    chans = [127 + 60 * np.sin(xx * rng.uniform(0.5, 2) + rng.uniform(0, 6)) * np.cos(yy * rng.uniform(0.5, 2))
             for _ in range(c)]
    img = np.stack(chans, -1) + rng.normal(0, 4, (h, w, c))
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img[:, :, 0] if c == 1 else img


@pytest.fixture(scope="module")
def codecs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    out = {}
    for c in (1, 3):
        d = tmp_path_factory.mktemp(f"codec{c}")
        train_codec([_smooth(rng, 32, 32, c) for _ in range(8)], d, [200, 20], N=8, M=8, n_down=2, steps=40,
                    finetune_steps=10, batch_size=4, crop=16)
        out[c] = d
    return out


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("hw", [(13, 21), (1, 1), (16, 16), (33, 7)])
def test_round_trip_equals_model_forward(codecs: dict[int, Path], c: int, hw: tuple[int, int]) -> None:
    codec = load_codec(codecs[c])
    img = _smooth(np.random.default_rng(hw[0]), *hw, c)
    for q in (0, -1):
        data = compress_image(codec, img, q)
        dec = decompress_image(data, codec)
        assert dec.shape == img.shape and dec.dtype == np.uint8
        net = codec.levels[q]
        x = torch.from_numpy(img.reshape(*hw, c).transpose(2, 0, 1).copy()).float()[None] / 255
        with torch.no_grad():
            x_hat = net(pad_image(x, codec.cfg.stride))["x_hat"][0, :, :hw[0], :hw[1]]
        ref = torch.round(x_hat.clamp(0, 1) * 255).to(torch.uint8).numpy().transpose(1, 2, 0).reshape(img.shape)
        np.testing.assert_array_equal(dec, ref)


def test_channel_mismatch_and_bad_images(codecs: dict[int, Path]) -> None:
    gray, rgb = load_codec(codecs[1]), load_codec(codecs[3])
    with pytest.raises(DataError, match="RGB"):
        compress_image(rgb, np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match="grayscale"):
        compress_image(gray, np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="uint8"):
        compress_image(gray, np.zeros((8, 8), np.float32))
    with pytest.raises(DataError):
        compress_image(gray, np.zeros((0, 8), np.uint8))
    with pytest.raises(VaekitError, match="quality"):
        compress_image(gray, np.zeros((8, 8), np.uint8), 5)


def test_rate_matches_entropy_model_estimate(codecs: dict[int, Path]) -> None:
    codec = load_codec(codecs[3])
    img = _smooth(np.random.default_rng(5), 96, 96, 3)
    for q in range(len(codec.levels)):
        payload_bits = 8 * len(unpack(compress_image(codec, img, q)).payload)
        x = torch.from_numpy(img.transpose(2, 0, 1).copy()).float()[None] / 255
        with torch.no_grad():
            out = codec.levels[q](x)
        model_bits = float(-torch.log2(out["likelihoods"]).sum())
        tbits = table_bits(out["y_hat"][0].to(torch.int32).numpy(), *codec.tables(q))
        assert abs(payload_bits - tbits) <= 0.01 * tbits + 64  # coder ≈ its integer tables (+ final words)
        assert abs(payload_bits - model_bits) <= 0.05 * model_bits + 64  # ≈ the float density of the network
        loss = RateDistortionLoss(10.0)(out, x)
        assert abs(float(loss["bpp"]) * 96 * 96 - model_bits) < 1e-3 * model_bits


def test_escape_coding_round_trip() -> None:
    """Latents outside the table range go through the escape symbol + Exp-Golomb-like overshoot; too large fails."""
    freq = np.zeros((2, 6), np.int32)
    freq[0, :4] = [TOTAL // 4 - 1, TOTAL // 2, TOTAL // 4, 1]  # values -1..1 and escape
    freq[1, :6] = [1000, 2000, TOTAL - 1000 - 2000 - 300 - 10 - 5, 300, 10, 5]  # values 0..4 and escape
    lo, lens = np.array([-1, 0], np.int32), np.array([4, 6], np.int32)
    y = np.zeros((2, 3, 5), np.int32)
    y[0] = [[0, 1, -1, 2, -2], [1000, -1000, 0, 0, 1], [(1 << 29), -(1 << 29), 0, 5, -1]]
    y[1] = [[0, 1, 2, 3, 4], [5, -1, 77, 0, 0], [4, 4, 4, 2, 123456]]
    payload = encode_latents(y, freq, lo, lens)
    np.testing.assert_array_equal(decode_latents(payload, (2, 3, 5), freq, lo, lens), y)
    assert 8 * len(payload) <= table_bits(y, freq, lo, lens) + 64
    y[0, 0, 0] = (1 << 30) + 5
    with pytest.raises(VaekitError, match="too large"):
        encode_latents(y, freq, lo, lens)


def test_corrupt_and_wrong_model(codecs: dict[int, Path], tmp_path: Path) -> None:
    codec = load_codec(codecs[1])
    img = _smooth(np.random.default_rng(1), 20, 20, 1)
    data = bytearray(compress_image(codec, img, 0))
    flipped = bytes(data[:-20]) + bytes([data[-20] ^ 0xFF]) + bytes(data[-19:])
    with pytest.raises(CorruptFileError, match="checksum"):
        decompress_image(flipped, codec)
    with pytest.raises(CorruptFileError, match="truncated"):
        decompress_image(bytes(data[:-3]), codec)
    box = unpack(bytes(data))
    assert len(data) - len(box.payload) <= 40  # compact header: meta [h, w, c, q], no path unless asked for
    base = dict(zip("hwcq", box.meta))
    for bad, msg in (({"h": 0}, "out of range"), ({"w": 1 << 20}, "out of range"), ({"c": 3}, "channel"),
                     ({"q": 7}, "quality level"), ({"h": "20"}, "integers"), ({"h": None}, "integers")):
        for forged_meta in (dict(base, **bad), list(dict(base, **bad).values())):  # v1-style object and v2 list
            forged = pack(CODEC, box.fingerprint, forged_meta, box.payload)
            with pytest.raises(CorruptFileError, match=msg):
                decompress_image(forged, codec)
    with pytest.raises(CorruptFileError, match=r"expected \[h, w, c, q\]"):
        decompress_image(pack(CODEC, box.fingerprint, box.meta[:3], box.payload), codec)
    assert np.array_equal(decompress_image(pack(CODEC, box.fingerprint, base, box.payload, version=1), codec),
                          decompress_image(bytes(data), codec))  # version-1 files still decode
    meta = dict(base)
    del meta["q"]
    with pytest.raises(CorruptFileError, match="lacks"):
        decompress_image(pack(CODEC, box.fingerprint, meta, box.payload), codec)
    with pytest.raises(CorruptFileError, match="multiple of 4"):
        decompress_image(pack(CODEC, box.fingerprint, box.meta, box.payload + b"x"), codec)
    with pytest.raises(CorruptFileError, match="does not end"):  # extra words after the last symbol
        decompress_image(pack(CODEC, box.fingerprint, box.meta, box.payload + box.payload), codec)
    rng = np.random.default_rng(0)
    for _ in range(20):  # random payloads with a valid checksum: a garbage image or CorruptFileError, nothing else
        junk = rng.integers(0, 1 << 32, len(box.payload) // 4 + 3, dtype=np.uint64).astype("<u4").tobytes()
        try:
            out = decompress_image(pack(CODEC, box.fingerprint, box.meta, junk), codec)
            assert out.shape == img.shape
        except CorruptFileError:
            pass
    with pytest.raises(WrongModelError, match="different model"):
        decompress_image(bytes(data), load_codec(codecs[3]))
    with pytest.raises(WrongModelError, match="codec"):
        decompress_image(pack("vaekit-bitsback", box.fingerprint, box.meta, box.payload), codec)
    # a codec whose weights changed (same architecture) is refused too
    other = load_codec(codecs[1])
    with torch.no_grad():
        other.levels[0].g_s[0].bias.add_(0.01)
    save_codec(other, tmp_path / "other")
    with pytest.raises(WrongModelError):
        decompress_image(bytes(data), tmp_path / "other")


def test_codec_folder_validation(codecs: dict[int, Path], tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_codec(tmp_path / "missing")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.json").write_text(json.dumps({"format": "vaekit-model", "version": 1}))
    with pytest.raises(CheckpointError, match="not a vaekit image codec"):
        load_codec(tmp_path / "x")
    doc = json.loads((codecs[1] / "config.json").read_text())
    d = tmp_path / "y"
    d.mkdir()
    forged = dict(doc, lambdas=doc["lambdas"][:1], levels=doc["levels"][:1])
    forged["config_blake2b"] = document_digest(forged, "config_blake2b")  # re-sealed: the weights check must catch it
    (d / "config.json").write_text(json.dumps(forged))
    (d / "model.safetensors").write_bytes((codecs[1] / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="unexpected"):
        load_codec(d)
    a, b = load_codec(codecs[1]), load_codec(codecs[1])
    assert a.fingerprint == b.fingerprint and a.lambdas == sorted(a.lambdas, reverse=True)
    assert isinstance(a, ImageCodec) and len(a.levels) == 2


_ENC = """
import sys, numpy as np
from vaekit.jobs.compress.lossy import compress_image_file
compress_image_file(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), embed_model_path=True)
"""
_DEC = """
import sys
from vaekit.jobs.compress.lossy import decompress_image_file
decompress_image_file(sys.argv[1], sys.argv[2], None)
"""


@pytest.mark.slow
def test_encode_and_decode_in_separate_processes(codecs: dict[int, Path], tmp_path: Path) -> None:
    from PIL import Image

    img = _smooth(np.random.default_rng(9), 37, 29, 3)
    Image.fromarray(img).save(tmp_path / "in.png")
    for name in ("a.vkz", "b.vkz"):
        subprocess.run([sys.executable, "-c", _ENC, str(codecs[3]), str(tmp_path / "in.png"), str(tmp_path / name),
                        "1"], check=True, env=ENV, timeout=120)
    assert (tmp_path / "a.vkz").read_bytes() == (tmp_path / "b.vkz").read_bytes()
    subprocess.run([sys.executable, "-c", _DEC, str(tmp_path / "a.vkz"), str(tmp_path / "out.npy")],
                   check=True, env=ENV, timeout=120)
    here = compress_image_file(codecs[3], tmp_path / "in.png", tmp_path / "c.vkz", 1, embed_model_path=True)
    assert (tmp_path / "c.vkz").read_bytes() == (tmp_path / "a.vkz").read_bytes()
    assert here["file_bytes"] == (tmp_path / "a.vkz").stat().st_size and here["quality"] == 1
    ref = decompress_image((tmp_path / "a.vkz").read_bytes(), codecs[3])
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), ref)
    assert abs(here["psnr_db"] - psnr(img, ref)) < 1e-9
    stats = decompress_image_file(tmp_path / "a.vkz", tmp_path / "out.png", codecs[3])
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), ref)
    assert stats["size"] == "29x37"
    small = compress_image_file(codecs[3], tmp_path / "in.png", tmp_path / "d.vkz", 1)  # default: no path recorded
    assert small["file_bytes"] < here["file_bytes"]
    with pytest.raises(VaekitError, match="no codec folder recorded"):
        decompress_image_file(tmp_path / "d.vkz", tmp_path / "out2.png", None)
    with pytest.raises(VaekitError, match="overwrite"):
        compress_image_file(codecs[3], tmp_path / "in.png", tmp_path / "in.png")


def test_metrics() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    assert ms_ssim(a, a) == pytest.approx(1.0) and psnr(a, a) == float("inf")
    assert 0 < ms_ssim(a, b) < 1 and 20 < psnr(a, b) < 30
    assert 0 < ms_ssim(a[:28, :28, 0], b[:28, :28, 0]) < 1
    p = np.array([28.0, 31, 34, 37])
    r = np.array([0.2, 0.4, 0.8, 1.6])
    assert bd_rate(r, p, r * 0.7, p) == pytest.approx(-30.0, abs=1e-6)
    assert bd_rate(r, p, r * 2, p + 0.0) == pytest.approx(100.0, abs=1e-6)
    assert bd_rate_interp(r, p, r * 0.7, p) == pytest.approx(-30.0, abs=1e-6)
    assert bd_rate(r, p, r, p + 20) != bd_rate(r, p, r, p + 20)  # no PSNR overlap → NaN


def test_cli_codec_train(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=np.stack([_smooth(rng, 16, 16, 1) for _ in range(6)]))
    args = ["codec", "train", str(tmp_path / "d.npz"), "--out", str(tmp_path / "c"), "--lambdas", "100,10",
            "--n", "4", "--m", "4", "--n-down", "2", "--steps", "3", "--finetune-steps", "2", "--crop", "16",
            "--no-progress"]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert "2 quality level(s)" in out and load_codec(tmp_path / "c").lambdas == [100.0, 10.0]
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "overwrite" in err and len(err.strip().splitlines()) == 1


def test_fuzz_slice_mutated_files_give_only_documented_errors(codecs: dict[int, Path]) -> None:
    from tests.helpers import mutated_containers

    codec = load_codec(codecs[1])
    blob = compress_image(codec, _smooth(np.random.default_rng(3), 12, 12, 1), 0)
    ref = decompress_image(blob, codec)
    for data, resealed in mutated_containers(blob, 1500, seed=11):
        try:
            out = decompress_image(data, codec)
        except (CorruptFileError, WrongModelError):
            continue
        assert out.shape == ref.shape  # a forged (re-sealed) payload may decode to another image of the same size
        if not resealed:
            assert np.array_equal(out, ref)  # an unsealed mutation never decodes differently


def test_cli_compress_decompress_and_one_line_errors(codecs: dict[int, Path], tmp_path: Path, capsys) -> None:
    from PIL import Image

    from tests.helpers import run_cli

    img = _smooth(np.random.default_rng(5), 19, 23, 1)
    Image.fromarray(img).save(tmp_path / "in.png")
    code, out, err = run_cli(capsys, "compress", tmp_path / "in.png", "-o", tmp_path / "a.vkz", "--model", codecs[1],
                             "--quality", "1")
    assert code == 0 and "bpp" in out, err
    code, out, err = run_cli(capsys, "decompress", tmp_path / "a.vkz", "-o", tmp_path / "a.png", "--model", codecs[1])
    assert code == 0, err
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")),
                                  decompress_image((tmp_path / "a.vkz").read_bytes(), codecs[1]))
    (tmp_path / "cut.vkz").write_bytes((tmp_path / "a.vkz").read_bytes()[:-5])
    dec = ["-o", tmp_path / "b.png"]
    for args, msg in ((["decompress", tmp_path / "cut.vkz", *dec, "--model", codecs[1]], "truncated"),
                      (["decompress", tmp_path / "a.vkz", *dec, "--model", codecs[3]], "different model"),
                      (["decompress", tmp_path / "a.vkz", *dec], "no codec folder recorded"),
                      (["compress", tmp_path / "nope.png", "-o", tmp_path / "c.vkz", "--model", codecs[1]], "not found"),
                      (["compress", tmp_path / "in.png", "-o", tmp_path / "c.vkz", "--model", codecs[3]], "grayscale"),
                      (["compress", tmp_path / "in.png", "-o", tmp_path / "c.vkz", "--model", codecs[1],
                        "--quality", "9"], "quality")):
        code, out, err = run_cli(capsys, *args)
        assert code == 2 and msg in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, (args, err)
    assert not (tmp_path / "b.png").exists() and not (tmp_path / "c.vkz").exists()
