"""Shared test helpers."""
from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any, Iterator

import numpy as np

from tests.conftest import ROOT
from vaekit.cli.main import main


def load_benchmark(name: str) -> ModuleType:
    """The script benchmarks/NAME.py as a module (once per process; registered in sys.modules so that its
    dataclasses resolve their annotations), for tests that run the same case lists or measurements."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def run_cli(capsys: Any, *args: Any) -> tuple[int, str, str]:
    """Run the CLI in-process → (exit code, stdout, stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def mutated_containers(blob: bytes, n: int, seed: int) -> Iterator[tuple[bytes, bool]]:
    """n mutated copies of a .vkz blob → (bytes, resealed): 1–3 random bytes replaced, every third one also
    truncated; every second one re-sealed with a fresh checksum (so it reaches the header parser and decoder)."""
    from vaekit.jobs.compress.container import DIGEST_BYTES, _digest

    rng = np.random.default_rng(seed)
    body_len = len(blob) - DIGEST_BYTES
    for case in range(n):
        b = bytearray(blob[:body_len])
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(len(b)))] = int(rng.integers(256))
        if case % 3 == 0:
            b = b[:int(rng.integers(len(b)))]
        resealed = bool(case % 2)
        yield bytes(b) + (_digest(bytes(b)) if resealed else blob[body_len:]), resealed
