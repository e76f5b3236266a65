"""A small always-run slice of the folder and explorer fuzzers (benchmarks/fuzz_folders.py, fuzz_explorer.py):
mutated model and detector folders (re-sealed or not) load and work or raise a documented VaekitError; mutated
requests to the explorer never get a 5xx. Fixed seeds, 200 cases each."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tests.helpers import load_benchmark





@pytest.mark.skipif(sys.platform == "win32", reason="the per-case hard timeout uses SIGALRM")
def test_mutated_model_and_detector_folders_give_documented_errors_only(tmp_path: Path) -> None:
    doc = load_benchmark("fuzz_folders").run(200, seed=0, root=tmp_path)
    assert doc["failures"] == 0, doc["failure_examples"]
    outcomes = doc["outcomes"]
    assert sum(outcomes.values()) == 200 and any(k.startswith("detector: CheckpointError") for k in outcomes)
    assert doc["worst_case_seconds"] < 2.0 and doc["peak_rss_mb"] < 1500


def test_mutated_explorer_requests_never_get_a_server_error() -> None:
    pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
    pytest.importorskip("httpx", reason="fastapi's TestClient needs httpx")
    doc = load_benchmark("fuzz_explorer").run(200, seed=0)
    assert doc["failures"] == 0, doc["failure_examples"]
    assert "200" in doc["outcomes"] and "422" in doc["outcomes"]
    assert doc["worst_case_seconds"] < 2.0


def test_the_fuzzers_peak_memory_is_their_own_run_not_the_worker_s() -> None:
    """The RSS limit judges the fuzz run: a pytest worker's earlier tests' peak (ru_maxrss: the whole process's
    life) must not count. A 400 MB array made and freed before the run is outside the run's peak."""
    import numpy as np

    tally = load_benchmark("fuzz_folders")  # the fuzzer's own Tally (it puts benchmarks/ on the path)
    memory = load_benchmark("peak_memory")
    big = np.ones(50_000_000)  # 400 MB, touched
    before = memory.peak_rss_mb()
    del big
    doc = tally.Tally(1.0, 1e9).summary("nothing", 0, 0)
    if doc.get("peak_rss_scope", "run") != "run":
        pytest.skip("this OS cannot reset a process's peak RSS")
    assert doc["peak_rss_mb"] < before - 300, (doc["peak_rss_mb"], before)
