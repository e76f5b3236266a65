"""Determinism through the real CLI, in other processes (forked children of a warm server, tests/warm_cli.py, and
new interpreters where it matters: one of a same-seed pair, the killed runs): a seed gives byte-identical weights,
and every way a run can stop — kill -9 at any moment (also before the first checkpoint), a time limit mid-epoch,
early stopping, a finished run — followed by ``--resume`` gives the weights and metrics of the uninterrupted run."""
from __future__ import annotations

import csv
import hashlib
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from tests.warm_cli import WarmCli

pytestmark = pytest.mark.slow  # CLI runs in subprocesses: started first under xdist (conftest)

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
SMALL = ["--hidden", "32", "--latent-dim", "4", "--batch-size", "10", "--threads", "1", "--no-progress",
         "--device", "cpu"]


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x = (load_digits().data > 7).astype(np.uint8)
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, train=x[:1200], valid=x[1200:1500], test=x[1500:])
    return path


def _train(cli: WarmCli, data: Path, out: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``vaekit train`` in a forked child of the warm server (tests/warm_cli.py: its own process, RNGs re-seeded
    from the OS); the killed runs below are real ``python -m vaekit.cli`` processes."""
    p = cli.run(["train", "--data", data, "--out", out, *SMALL, *extra], env=ENV, timeout=300)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def _digest(run: Path) -> str:
    return hashlib.sha256((run / "model" / "model.safetensors").read_bytes()).hexdigest()


def _metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "time"} for row in csv.DictReader(f)]


def test_same_seed_same_bytes_other_seed_other_bytes(warm_cli: WarmCli, digits: Path, tmp_path: Path) -> None:
    args = ["--epochs", "2", "--objective", "elbo", "--warmup", "0"]
    _train(warm_cli, digits, tmp_path / "a", *args, "--seed", "7")
    real = subprocess.run([sys.executable, "-m", "vaekit.cli", "train", "--data", str(digits), "--out",
                           str(tmp_path / "b"), *SMALL, *args, "--seed", "7"], capture_output=True, text=True, env=ENV,
                          timeout=300)  # a new interpreter, against the forked child: the same bytes
    assert real.returncode == 0, real.stderr
    _train(warm_cli, digits, tmp_path / "c", *args, "--seed", "8")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    assert _metrics(tmp_path / "a") == _metrics(tmp_path / "b")


RECIPES = {
    "elbo-cosine-fp32": ["--objective", "elbo", "--schedule", "cosine", "--precision", "fp32", "--warmup", "1"],
    "iwae-plateau-bf16": ["--objective", "iwae", "--k", "3", "--schedule", "plateau", "--precision", "bf16"],
    "iwae-cosine-fp32-dynamic": ["--objective", "iwae", "--k", "2", "--precision", "fp32", "--binarize", "dynamic"],
}


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_time_limit_stop_then_resume_equals_uninterrupted(
        warm_cli: WarmCli, digits: Path, tmp_path: Path, recipe: str) -> None:
    args = ["--epochs", "6", "--seed", "3", *RECIPES[recipe]]
    _train(warm_cli, digits, tmp_path / "ref", *args)
    # a 0.12 s budget stops in the middle of an early epoch (120 steps each); resume with no limit
    p = _train(warm_cli, digits, tmp_path / "cut", *args, "--time-limit", "0.002", "--fixed-schedule")
    assert "stopped by time_limit" in p.stdout
    p = _train(warm_cli, digits, tmp_path / "cut", "--resume", *SMALL)
    assert "stopped by epochs" in p.stdout
    assert _digest(tmp_path / "cut") == _digest(tmp_path / "ref")
    assert _metrics(tmp_path / "cut") == _metrics(tmp_path / "ref")


@pytest.mark.parametrize("when", ["before_first_checkpoint", "mid_run"])
def test_kill_9_then_resume_equals_uninterrupted(
        warm_cli: WarmCli, digits: Path, tmp_path: Path, when: str) -> None:
    args = ["--epochs", "4", "--seed", "5", "--objective", "iwae", "--k", "2"]
    _train(warm_cli, digits, tmp_path / "ref", *args)
    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "vaekit.cli", "train", "--data", str(digits), "--out", str(run),
                             *SMALL, *args], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    if when == "before_first_checkpoint":  # as soon as the run file exists, before any epoch ends
        while not (run / "run.json").exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert not (run / "checkpoint.safetensors").exists()
    else:  # a while after the first checkpoint, somewhere inside a later epoch
        while not (run / "checkpoint.safetensors").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.15)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    _train(warm_cli, digits, run, "--resume", *SMALL, *args)
    assert _digest(run) == _digest(tmp_path / "ref")
    assert _metrics(run) == _metrics(tmp_path / "ref")


def test_early_stopped_and_finished_runs_resume_to_the_same_model(
        warm_cli: WarmCli, digits: Path, tmp_path: Path) -> None:
    args = ["--epochs", "30", "--seed", "1", "--objective", "elbo", "--warmup", "0", "--early-stopping", "1",
            "--lr", "0.05"]
    p = _train(warm_cli, digits, tmp_path / "es", *args)
    assert "stopped by early_stopping" in p.stdout
    before, rows = _digest(tmp_path / "es"), _metrics(tmp_path / "es")
    p = _train(warm_cli, digits, tmp_path / "es", "--resume", *SMALL)
    assert "stopped by early_stopping" in p.stdout and "trained 0 epoch" not in p.stderr
    assert _digest(tmp_path / "es") == before and _metrics(tmp_path / "es") == rows


def test_time_limit_of_a_resumed_run_counts_from_its_own_start(
        warm_cli: WarmCli, digits: Path, tmp_path: Path) -> None:
    """A run stopped by a time limit and resumed with the same limit makes real progress (it used to run 1 step).
    3 s per invocation and epochs without end, so that both stop by time even on a slow, shared machine."""
    args = ["--epochs", "100000", "--seed", "2", "--objective", "elbo", "--warmup", "0"]
    p = _train(warm_cli, digits, tmp_path / "r", *args, "--time-limit", "0.05", "--fixed-schedule")
    assert "stopped by time_limit" in p.stdout
    n1 = len(_metrics(tmp_path / "r")) if (tmp_path / "r" / "metrics.csv").exists() else 0
    p = _train(warm_cli, digits, tmp_path / "r", "--resume", *SMALL, "--time-limit", "0.05")
    assert "stopped by time_limit" in p.stdout
    n2 = len(_metrics(tmp_path / "r"))
    assert n2 >= n1 + 1, (n1, n2)


def test_time_limit_sizes_the_cosine_schedule(warm_cli: WarmCli, digits: Path, tmp_path: Path) -> None:
    """With --time-limit, the cosine schedule runs over the time: the lr falls epoch by epoch to near its minimum."""
    args = ["--epochs", "100000", "--seed", "2", "--objective", "elbo", "--warmup", "0"]
    p = _train(warm_cli, digits, tmp_path / "t", *args, "--time-limit", "0.05")
    assert "stopped by epochs" in p.stdout or "stopped by time_limit" in p.stdout
    with open(tmp_path / "t" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    lrs, times = [float(r["lr"]) for r in rows], [float(r["time"]) for r in rows]
    assert 2 <= len(rows) < 100000 and lrs == sorted(lrs, reverse=True)
    # epoch i trains at the lr set after epoch i−1: lo + (lr − lo)·½(1 + cos π·t_{i−1}/T), T = the 3-s limit (the
    # epoch fraction i/100000 is negligible); an epoch-based cosine would leave the lr at ~1e-3 throughout
    lo = 1e-3 * 0.05
    for i in range(1, len(rows)):
        p_time = min(1.0, max(times[i - 1] / 3.0, i / 100000))
        assert math.isclose(lrs[i], lo + (1e-3 - lo) * 0.5 * (1 + math.cos(math.pi * p_time)), rel_tol=1e-6), i
