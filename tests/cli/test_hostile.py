"""Hostile inputs, the case list of benchmarks/hostile_inputs.py: crafted model configs, weights, arrays, images,
.vkz files, run and detector folders (headers or sparse files, made on the fly) and count options far past their
bounds. Each must end in exactly one stderr line naming the problem, exit code 2, no traceback, a peak RSS under
1.5 GB and a few seconds of wall time. The cases run through the CLI's entry point in one driver process (one
forked child per case, its own peak RSS from os.wait4); two also run as ``python -m vaekit.cli`` subprocesses."""
from __future__ import annotations

import sys
from typing import Any

import pytest
from tests.helpers import load_benchmark

H = load_benchmark("hostile_inputs")

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="forks, sparse files and /proc: Linux only")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any]]:
    ctx = H.build_context(tmp_path_factory.mktemp("hostile"))
    return ctx, {r.name: r for r in H.run_in_driver(H.CASES, ctx)}


def test_case_names_are_unique() -> None:
    names = [c.name for c in H.CASES]
    assert len(names) == len(set(names)) and len(names) >= 40


@pytest.mark.parametrize("name", [c.name for c in H.CASES])
def test_hostile_input_is_one_line_exit_2_bounded(run: tuple[Any, dict[str, Any]], name: str) -> None:
    r = run[1][name]
    case = next(c for c in H.CASES if c.name == name)
    assert r.exit_code == 2 and r.stderr_lines == 1 and not r.traceback, r
    assert case.expect in r.message and r.message.startswith("error: "), r
    assert r.peak_rss_mb < H.RSS_LIMIT_MB and r.seconds < H.SECONDS_LIMIT, r


@pytest.mark.parametrize("name", ["sample-n-1e8", "npz-zip-bomb"])
def test_same_result_from_python_m_vaekit_cli(run: tuple[Any, dict[str, Any]], name: str) -> None:
    ctx, results = run
    code, err, rss_mb, seconds = H.run_real_cli(ctx.argv[name], ctx.root)
    lines = [ln for ln in err.replace(str(ctx.root), "<tmp>").splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0] == results[name].message and rss_mb < H.RSS_LIMIT_MB and seconds < 60, (lines, rss_mb, seconds)
