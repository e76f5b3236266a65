"""The package's shape: layers point one way, jobs do not import each other, no import cycles (import-linter + grimp)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp")
importlinter = pytest.importorskip("importlinter")

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    """The layers and independence contracts of pyproject.toml (the same check as ``lint-imports``)."""
    from importlinter.application.use_cases import lint_imports
    from importlinter.configuration import configure

    configure()

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        ok = lint_imports(config_filename=str(ROOT / "pyproject.toml"), cache_dir=None, no_logo=True)
    finally:
        os.chdir(cwd)
    assert ok is True, "an import breaks the layer or independence contracts: run `lint-imports` to see which"


def _cycles(graph: "grimp.ImportGraph") -> list[list[str]]:
    mods = sorted(graph.modules)
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def strong(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in mods:
        if m not in index:
            strong(m)
    return out


def test_no_import_cycles() -> None:
    """No two modules import each other, directly or through others (function-level imports count too)."""
    graph = grimp.build_graph("vaekit", cache_dir=None)
    assert _cycles(graph) == []


def test_contract_can_fail(tmp_path: Path) -> None:
    """The cycle finder does find a planted cycle (so the check above is not vacuous)."""
    class G:
        modules = {"a", "b", "c"}

        @staticmethod
        def find_modules_directly_imported_by(m: str) -> set[str]:
            return {"a": {"b"}, "b": {"c"}, "c": {"a"}}[m]

    assert _cycles(G()) == [["a", "b", "c"]]


def test_tests_mirror_the_package() -> None:
    """Every sub-package of src/vaekit with modules of its own has a test folder at the same place (the lowest
    layer's modules, errors/registry/files/runtime/web, are tested in tests/base/), and no test file sits at the top
    except the whole-repository checks (architecture, README examples, the benchmark plan)."""
    src = ROOT / "src" / "vaekit"
    tests = ROOT / "tests"
    missing = []
    for pkg in sorted(p for p in src.rglob("__init__.py")):
        rel = pkg.parent.relative_to(src)
        if rel == Path(".") or not any(m.name != "__init__.py" for m in pkg.parent.glob("*.py")):
            continue
        # a nested package (core/nn, deploy/serve, the compress helpers) is covered by its parent's folder
        top = rel.parts[:2] if rel.parts[0] == "jobs" else rel.parts[:1]
        if not (tests.joinpath(*top)).is_dir() or not any(tests.joinpath(*top).glob("test_*.py")):
            missing.append("/".join(top))
    assert not missing, f"packages without a mirrored test folder: {sorted(set(missing))}"
    assert any((tests / "base").glob("test_*.py"))
    top_level = sorted(p.name for p in tests.glob("test_*.py"))
    assert top_level == ["test_architecture.py", "test_benchmark_plan.py", "test_readme_examples.py"], top_level


# Pyflakes' rules (ruff's F: undefined names, unused imports and variables, redefinitions) over the package, the
# benchmark scripts and the tests: a benchmark script naming an unimported module fails here, not hours into a run.
def test_pyflakes_rules_hold_everywhere():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it is in the dev extra: pip install -e '.[dev]')")
    out = subprocess.run([ruff, "check", "--select", "F", "--no-cache", "--output-format", "concise",
                          "src", "benchmarks", "tests"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]
