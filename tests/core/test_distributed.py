"""Distributed training under torchrun (gloo on CPU): 2 processes match one process, and kill -9 + --resume gives the
uninterrupted distributed result byte for byte."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import run_cli
from vaekit.core import workflows

BIN = Path(sys.executable).parent
TORCHRUN, VAEKIT = BIN / "torchrun", BIN / "vaekit"
pytestmark = [pytest.mark.skipif(not TORCHRUN.exists() or not VAEKIT.exists(), reason="torchrun / vaekit not installed"),
              pytest.mark.slow]
COMMON = ["--epochs", "12", "--hidden", "64", "--latent-dim", "4", "--no-progress", "--seed", "3", "--fixed-schedule",
          "--batch-size", "40"]


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.datasets import load_digits

    x = (load_digits().images / 16.0 > 0.5).astype(np.float32).reshape(-1, 1, 8, 8)
    x = x[np.random.default_rng(0).permutation(len(x))]
    path = tmp_path_factory.mktemp("ddp") / "digits.npz"
    np.savez(path, x_train=x[:1200], x_valid=x[1200:1400], x_test=x[1400:])
    return path


def _cmd(data: Path, out: Path, *extra: str) -> list[str]:
    return [str(TORCHRUN), "--standalone", "--nproc_per_node=2", "--no-python", str(VAEKIT), "train",
            "--data", str(data), "--out", str(out), *COMMON, *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _weights(run: Path) -> bytes:
    return (run / "model" / "model.safetensors").read_bytes()


@pytest.fixture(scope="module")
def ddp_run(digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp") / "run"
    p = subprocess.run(_cmd(digits, out), env=_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.count("trained 12 epoch(s)") == 1  # rank 0 reports, rank 1 stays quiet
    return out


def test_two_processes_match_one(ddp_run: Path, digits: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run_cli(capsys, "train", "--data", digits, "--out", tmp_path / "single", *COMMON, "--threads", "1")
    assert code == 0, err
    nll = {name: workflows.evaluate_file(run / "model", digits, "test", k=100, threads=1)["nll"]
           for name, run in (("ddp", ddp_run), ("single", tmp_path / "single"))}
    assert abs(nll["ddp"] - nll["single"]) / nll["single"] < 0.02, nll
    assert _weights(ddp_run) != _weights(tmp_path / "single")  # it really ran two shards (different noise draws)
    lines = (ddp_run / "metrics.csv").read_text().splitlines()
    assert len(lines) == 13 and "val_iwae" in lines[0]


def test_kill_then_resume_gives_the_uninterrupted_run(ddp_run: Path, digits: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    p = subprocess.Popen(_cmd(digits, out), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    deadline = time.monotonic() + 240
    while not (out / "checkpoint.safetensors").exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(p.pid, signal.SIGKILL)  # torchrun and both ranks, mid-run
    p.wait()
    assert (out / "checkpoint.safetensors").exists() and not (out / "model").exists(), "the kill came too late"
    r = subprocess.run(_cmd(digits, out, "--resume"), env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _weights(out) == _weights(ddp_run)


def test_resume_with_another_process_count_is_refused(ddp_run: Path, digits: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(ddp_run, run)
    code, _, err = run_cli(capsys, "train", "--data", digits, "--out", run, *COMMON, "--epochs", "20", "--resume")
    assert code == 2 and "written by 2 process(es), this run has 1" in err and "Traceback" not in err
