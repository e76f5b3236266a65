"""Pyflakes' rules (ruff's F: undefined names, unused imports and variables, redefinitions) over the package, the
benchmark scripts and the tests: a benchmark script that names an unimported module fails here, not hours into a run."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_pyflakes_rules_hold_everywhere():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it is in the dev extra: pip install -e '.[dev]')")
    out = subprocess.run([ruff, "check", "--select", "F", "--no-cache", "--output-format", "concise",
                          "src", "benchmarks", "tests"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]
