"""Shared test helpers."""
from __future__ import annotations

from typing import Any

from vaekit.cli import main


def run_cli(capsys: Any, *args: Any) -> tuple[int, str, str]:
    """Run the CLI in-process → (exit code, stdout, stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err
