"""The CLI never overwrites what the user gave it, refuses bad option values with one line (exit 2), and catches
damaged model files; found by a bad-input sweep over every command."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers import run_cli
from vaekit.core.checkpoint import load_model, save_model
from vaekit.core.config import ModelConfig, TrainConfig
from vaekit.core.model import VAE
from vaekit.errors import CheckpointError, VaekitError
from vaekit.files import document_digest


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("model")
    save_model(VAE(ModelConfig(input_shape=(16,), latent_dim=2, hidden=(8,))), d)
    return d


def _one_line_exit_2(res: tuple[int, str, str], message: str) -> None:
    code, _, err = res
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and message in lines[0] and "Traceback" not in err, err


def test_outputs_never_replace_inputs(model_dir: Path, tmp_path: Path, capsys) -> None:
    x = (np.random.default_rng(0).random((6, 16)) < 0.3).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    before = (tmp_path / "x.npy").read_bytes()
    _one_line_exit_2(run_cli(capsys, "reconstruct", model_dir, "--data", tmp_path / "x.npy", "--n", 2,
                             "-o", tmp_path / "x.npy"), "refusing to overwrite an input")
    assert (tmp_path / "x.npy").read_bytes() == before
    config = (model_dir / "config.json").read_bytes()
    np.save(tmp_path / "b.npy", x.astype(np.uint8))
    _one_line_exit_2(run_cli(capsys, "compress", tmp_path / "b.npy", "--lossless", "--model", model_dir,
                             "-o", model_dir / "config.json", "--no-progress"), "refusing to overwrite")
    assert (model_dir / "config.json").read_bytes() == config
    code, _, err = run_cli(capsys, "sample", model_dir, "--n", 2, "-o", model_dir / "new.npy")  # new files are fine
    assert code == 0 and (model_dir / "new.npy").is_file(), err
    (model_dir / "new.npy").unlink()
    (tmp_path / "d.png").mkdir()
    _one_line_exit_2(run_cli(capsys, "sample", model_dir, "--n", 2, "-o", tmp_path / "d.png"), "is a folder")


def test_two_outputs_may_not_share_a_path(tmp_path: Path, capsys) -> None:
    pd.DataFrame({"a": [1.0, np.nan, 3.0, 4.0], "b": [1.0, 2.0, np.nan, 5.0]}).to_csv(tmp_path / "t.csv", index=False)
    before = (tmp_path / "t.csv").read_bytes()
    _one_line_exit_2(run_cli(capsys, "impute", tmp_path / "t.csv", "--out", tmp_path / "o.csv", "--uncertainty",
                             tmp_path / "o.csv"), "two outputs")
    _one_line_exit_2(run_cli(capsys, "impute", tmp_path / "t.csv", "--out", tmp_path / "t.csv"), "overwrite")
    assert (tmp_path / "t.csv").read_bytes() == before


@pytest.mark.parametrize("args, message", [
    (["sample", "{m}", "--temperature", "nan"], "temperature"),
    (["sample", "{m}", "--temperature", "-1"], "temperature"),
    (["sample", "{m}", "--label", "3"], "not conditional"),
    (["latent", "traverse", "{m}", "--dims", "x", "-o", "{t}/a.png"], "--dims must be"),
    (["latent", "traverse", "{m}", "--dims", "7", "-o", "{t}/a.png"], "out of range"),
    (["latent", "traverse", "{m}", "--span", "nan", "-o", "{t}/a.png"], "--span"),
    (["latent", "map", "{m}", "--span", "0", "-o", "{t}/a.png"], "--span"),
    (["latent", "kl", "{m}", "--data", "{t}/x.npy", "--factors", "{t}/f_nan.npy"], "NaN"),
    (["latent", "kl", "{m}", "--data", "{t}/x.npy", "--factors", "{t}/f_obj.npy"], "not a readable .npy"),
    (["train", "--data", "{t}/x.npz", "--out", "{t}/r1", "--lr", "nan"], "lr must be"),
    (["train", "--data", "{t}/x.npz", "--out", "{t}/r2", "--weight-decay", "-1"], "weight_decay"),
    (["train", "--data", "{t}/x.npz", "--out", "{t}/r3", "--beta", "-1"], "beta"),
])
def test_bad_option_values_exit_2_with_one_line(model_dir: Path, tmp_path: Path, capsys, args, message) -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((40, 16)) < 0.3).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "x.npz", train=x, test=x[:10])
    np.save(tmp_path / "f_nan.npy", np.full(40, np.nan))
    np.save(tmp_path / "f_obj.npy", np.array([{"a": 1}] * 40, dtype=object), allow_pickle=True)
    args = [a.format(m=model_dir, t=tmp_path) for a in args]
    _one_line_exit_2(run_cli(capsys, *args), message)


def test_ranges_are_enforced_by_the_option_parser(model_dir: Path, capsys) -> None:
    for args in (["latent", "map", model_dir, "--grid", "0"], ["latent", "traverse", model_dir, "--steps", "0"],
                 ["sample", model_dir, "--n", "0"]):
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and "Traceback" not in err, err


def test_train_config_refuses_non_finite_and_negative_values() -> None:
    for kw in ({"lr": float("nan")}, {"lr": float("inf")}, {"weight_decay": -1.0}, {"free_bits": -0.5},
               {"warmup_epochs": -1.0}, {"time_limit_min": -5.0}, {"early_stopping": -1}):
        with pytest.raises(VaekitError):
            TrainConfig(**kw)


def test_damaged_weights_and_bad_config_values_are_caught(tmp_path: Path) -> None:
    d = tmp_path / "m"
    save_model(VAE(ModelConfig(input_shape=(16,), latent_dim=2, hidden=(8,))), d)
    raw = bytearray((d / "model.safetensors").read_bytes())
    raw[-3] ^= 0x01  # one bit of one weight: still a valid safetensors file with finite values
    (d / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum"):
        load_model(d)
    save_model(VAE(ModelConfig(input_shape=(16,), latent_dim=2, hidden=(8,))), tmp_path / "m2")
    doc = json.loads((tmp_path / "m2" / "config.json").read_text())
    doc["model"]["hidden"] = "abc"
    doc["config_blake2b"] = document_digest(doc, "config_blake2b")  # re-sealed: the value check must still hold
    (tmp_path / "m2" / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="invalid"):
        load_model(tmp_path / "m2")


def test_inpainting_works_with_a_convolutional_model() -> None:
    from vaekit.jobs.impute.inpaint import inpaint

    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=(1, 8, 8), latent_dim=2, arch="conv", channels=(4,), hidden=(16,))).eval()
    x = torch.rand(2, 64).round()
    observed = torch.rand(2, 64) > 0.5
    filled, ess = inpaint(model, x, observed, n_samples=16, rounds=1)
    assert filled.shape == (2, 64) and torch.equal(filled[observed], x[observed]) and (ess > 0).all()


def test_more_option_checks_from_the_sweep(model_dir: Path, tmp_path: Path, capsys) -> None:
    x = (np.random.default_rng(1).random((12, 16)) < 0.3).astype(np.uint8)
    np.save(tmp_path / "b.npy", x)
    (tmp_path / "junk.npz").write_bytes(b"\x93NUMPY not a zip")
    pd.DataFrame({"a": [1.0, np.nan, 3.0], "b": [1.0, 2.0, np.nan]}).to_csv(tmp_path / "t.csv", index=False)
    cases = [
        (["compress", tmp_path / "b.npy", "--lossless", "--model", model_dir, "-o", tmp_path / "a.vkz",
          "--quality", "3"], "apply to lossy"),
        (["latent", "embed", model_dir, "--data", tmp_path / "b.npy", "--method", "foo", "-o", tmp_path / "e.png"],
         "method must be"),
        (["latent", "embed", model_dir, "--data", tmp_path / "b.npy", "-o", tmp_path / "e.txt"], ".png"),
        (["impute", tmp_path / "t.csv", "--out", tmp_path / "o.csv", "--binary", "a", "--continuous", "a"],
         "more than one kind"),
        (["train", "--data", tmp_path / "junk.npz", "--out", tmp_path / "r"], "not a zip archive"),
    ]
    for args, message in cases:
        _one_line_exit_2(run_cli(capsys, *args), message)
    code, _, err = run_cli(capsys, "compress", tmp_path / "b.npy", "--lossless", "--model", model_dir,
                           "-o", tmp_path / "a.vkz", "--no-progress")
    assert code == 0, err
    _one_line_exit_2(run_cli(capsys, "decompress", tmp_path / "a.vkz", "-o", tmp_path / "a.png"), ".npy")


def test_colour_image_on_a_grayscale_model_and_a_table_without_columns(tmp_path: Path, capsys) -> None:
    from PIL import Image

    from vaekit import VAEAnomalyDetector
    from vaekit.errors import DataError

    save_model(VAE(ModelConfig(input_shape=(1, 6, 6), latent_dim=2, hidden=(8,))), tmp_path / "img")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(tmp_path / "colour.png")
    Image.fromarray(np.repeat(rng.integers(0, 256, (6, 6, 1), dtype=np.uint8), 3, 2)).save(tmp_path / "grey_rgb.png")
    Image.fromarray(np.where(np.arange(36).reshape(6, 6) % 2, 255, 0).astype(np.uint8)).save(tmp_path / "mask.png")
    _one_line_exit_2(run_cli(capsys, "inpaint", tmp_path / "img", tmp_path / "colour.png", "--mask", tmp_path / "mask.png",
                             "--out", tmp_path / "o.png", "--n-samples", 8), "colour image")
    code, _, err = run_cli(capsys, "inpaint", tmp_path / "img", tmp_path / "grey_rgb.png", "--mask",
                           tmp_path / "mask.png", "--out", tmp_path / "o.png", "--n-samples", 8)
    assert code == 0, err  # an RGB file holding a grey image is fine
    with pytest.raises(DataError, match="no columns left"):
        VAEAnomalyDetector(likelihood="mixed").fit(pd.DataFrame(index=range(5)))
