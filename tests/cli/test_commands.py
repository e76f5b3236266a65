import json
import os
import subprocess
import sys

import numpy as np
import pytest

CLI = [sys.executable, "-m", "vaekit.cli"]


def run(cli, *args, check=True):
    """``vaekit ARGS`` in another process: a forked child of the warm server (tests/warm_cli.py)."""
    p = cli.run(args, env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=300)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def _command_paths():
    """Every command and sub-command of the root app, walked from the app itself (so a new one is never missed)."""
    import typer

    from vaekit.cli.main import app

    def walk(cmd, prefix):
        yield prefix
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from walk(sub, [*prefix, name])

    return list(walk(typer.main.get_command(app), []))


def test_every_command_has_help():
    from typer.testing import CliRunner

    from vaekit.cli.main import app

    paths = _command_paths()
    assert len(paths) >= 20 and ["latent", "interpolate"] in paths and ["codec", "train"] in paths
    runner = CliRunner()
    for path in paths:
        res = runner.invoke(app, [*path, "--help"])
        assert res.exit_code == 0 and "Usage" in res.output, (path, res.output)
        assert "Traceback" not in res.output


@pytest.mark.slow
def test_version_and_module_entry_points():
    from vaekit import __version__

    p = subprocess.run([*CLI, "--version"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == f"vaekit {__version__}"
    p = subprocess.run([sys.executable, "-m", "vaekit", "--version"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and __version__ in p.stdout


@pytest.mark.slow
def test_train_eval_sample_reconstruct_round_trip(warm_cli, tmp_path, tiny_npz):
    out = tmp_path / "run"
    run(warm_cli, "train", "--data", tiny_npz, "--out", out, "--epochs", 3, "--latent-dim", 3, "--hidden", "32",
        "--no-progress", "--seed", 1)
    res = json.loads(run(warm_cli, "eval", out, "--data", tiny_npz, "--split", "test", "--k", 50, "--json").stdout)
    assert {"nll", "elbo", "kl", "bits_per_dim"} <= set(res)
    assert res["nll"] <= -res["elbo"] + 1e-3 and res["bits_per_dim"] == pytest.approx(res["nll"] / 36 / np.log(2))
    run(warm_cli, "sample", out / "model", "--n", 8, "-o", tmp_path / "s.png")
    run(warm_cli, "sample", out, "--n", 8, "-o", tmp_path / "s.npy")
    assert np.load(tmp_path / "s.npy").shape == (8, 36)
    run(warm_cli, "reconstruct", out, "--data", tiny_npz, "--n", 4, "-o", tmp_path / "r.png")
    assert (tmp_path / "s.png").stat().st_size > 0 and (tmp_path / "r.png").stat().st_size > 0
    # a second train into the same folder must not overwrite it; --resume continues it
    p = run(warm_cli, "train", "--data", tiny_npz, "--out", out, "--epochs", 3, "--no-progress", check=False)
    assert p.returncode == 2 and "already holds a training run" in p.stderr
    run(warm_cli, "train", "--data", tiny_npz, "--out", out, "--epochs", 3, "--no-progress", "--resume")


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "missing.npz", "--out", "o"], "missing.npz: file not found"),
    (["eval", "nomodel", "--data", "x.npz"], "no vaekit model here"),
    (["train", "--data", "{npz}", "--out", "{tmp}/o2", "--likelihood", "poisson"], "likelihood 'poisson'"),
    (["train", "--data", "{npz}", "--out", "{tmp}/o3", "--hidden", "a,b"], "--hidden must be"),
    (["train", "--data", "{floats}", "--out", "{tmp}/o4"], r"\[0, 1\]"),
    (["train", "--data", "{floats}", "--out", "{tmp}/o5", "--likelihood", "logistic"], "8-bit"),
])
def test_bad_input_exits_2_with_one_line(warm_cli, tmp_path, tiny_npz, args, message):
    import re

    floats = tmp_path / "f.npz"
    np.savez(floats, train=np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32))
    args = [a.format(npz=tiny_npz, tmp=tmp_path, floats=floats) for a in args]
    p = run(warm_cli, *args, check=False)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and re.search(message, lines[0]), p.stderr


@pytest.mark.slow
def test_eval_rejects_data_of_wrong_shape(warm_cli, tmp_path, tiny_npz):
    out = tmp_path / "run"
    run(warm_cli, "train", "--data", tiny_npz, "--out", out, "--epochs", 1, "--hidden", "16", "--no-progress")
    other = tmp_path / "o.npz"
    np.savez(other, test=np.zeros((5, 10), np.uint8))
    p = run(warm_cli, "eval", out, "--data", other, "--k", 5, check=False)
    assert p.returncode == 2 and "model expects" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.slow
def test_conv_model_on_8bit_images_from_an_image_folder(warm_cli, tmp_path):
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    folder = tmp_path / "imgs"
    for i in range(60):
        (folder / str(d.target[i])).mkdir(parents=True, exist_ok=True)
        Image.fromarray((d.images[i] * 15).astype(np.uint8)).save(folder / str(d.target[i]) / f"{i}.png")
    out = tmp_path / "conv"
    run(warm_cli, "train", "--data", folder, "--out", out, "--arch", "conv", "--likelihood", "logistic",
        "--channels", "8,16", "--hidden", "32", "--latent-dim", 4, "--epochs", 2, "--batch-size", 16, "--no-progress")
    res = json.loads(run(warm_cli, "eval", out, "--data", folder, "--k", 20, "--json").stdout)
    assert res["n"] == 60 and res["nll"] <= -res["elbo"] + 1e-3
    assert res["bits_per_dim"] == pytest.approx(res["nll"] / (64 * np.log(2)))  # 8-bit data: nats → bits per pixel
    run(warm_cli, "sample", out, "--n", 4, "-o", tmp_path / "c.png")


def test_warm_cli_children_are_fresh_unseeded_processes(warm_cli):
    """The warm server (tests/warm_cli.py) that most CLI tests use: each command is its own process, its random
    generators are not the server's (an unseeded command differs run to run), and exit codes and stdin pass."""
    py = [sys.executable, "-S", str(warm_cli.bin / "python")]
    code = "import os, random, numpy, torch; print(os.getpid(), random.random(), numpy.random.random(), torch.rand(1))"
    a, b = (subprocess.run([*py, "-c", code], capture_output=True, text=True, timeout=60) for _ in range(2))
    assert a.returncode == b.returncode == 0, a.stderr
    assert all(x != y for x, y in zip(a.stdout.split(" ", 3), b.stdout.split(" ", 3))), (a.stdout, b.stdout)
    p = subprocess.run([*py, "-c", "import sys; print(sys.stdin.read()[::-1]); sys.exit(3)"], input="abc",
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 3 and p.stdout.strip() == "cba"
    p = warm_cli.run(["train", "--data", "missing.npz", "--out", "o"])
    assert p.returncode == 2 and p.stderr.strip() == "error: missing.npz: file not found"
