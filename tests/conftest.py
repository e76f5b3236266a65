from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch

from tests.warm_cli import WarmCli

ROOT = Path(__file__).resolve().parents[1]  # the repository
SHARED = ROOT.parent / "shared" / "data"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow(reason): takes tens of seconds or more; deselect with -m 'not slow'")


# Under pytest-xdist (``make test`` runs 2 workers) each worker computes on one thread: two 2-thread pools on 2
# cores spin against each other (benchmarks/threads.py measured 7×).
TEST_THREADS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else 2


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(TEST_THREADS)


@pytest.fixture(scope="session")
def warm_cli() -> Iterator[WarmCli]:
    """``vaekit`` commands in forked children of one warm process (tests/warm_cli.py): one server per worker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    cli = WarmCli({"OMP_NUM_THREADS": "1", **env, "MPLBACKEND": "Agg"})  # one thread a worker, as TEST_THREADS
    try:
        yield cli
    finally:
        cli.close()


@pytest.fixture
def tiny_npz(tmp_path: Path) -> Path:
    """Binary 6×6 'images' with structure (two prototypes + noise), train/valid/test keys."""
    rng = np.random.default_rng(0)
    protos = (rng.random((2, 36)) < 0.4)

    def make(n: int) -> np.ndarray:
        idx = rng.integers(0, 2, n)
        flip = rng.random((n, 36)) < 0.05
        return (protos[idx] ^ flip).astype(np.uint8)

    p = tmp_path / "tiny.npz"
    np.savez_compressed(p, train=make(400), valid=make(100), test=make(100))
    return p


# the longest single tests (minutes under 2 workers): they start first of all, so no worker idles at the end while
# one of them runs (longest-processing-time-first)
LONGEST = {"test_readme_examples.py": 3, "test_estimator_defaults.py": 2, "test_commands.py": 1}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` run first (a stable sort: under pytest-xdist the long ones start at once instead of
    trailing behind the short ones on one worker); tests marked ``gpu`` run where PyTorch sees a CUDA device and are
    skipped (with the reason) elsewhere."""
    items.sort(key=lambda item: (0 if "slow" in item.keywords else 1, -LONGEST.get(item.path.name, 0)))
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
