"""The package's shape: layers point one way, jobs do not import each other, no import cycles (import-linter + grimp)."""
from __future__ import annotations

import os
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
