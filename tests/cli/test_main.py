"""The root app (vaekit.cli.main) starts fast: building it, ``--version`` and every command's ``--help`` import none of
the heavy libraries — each command imports what it needs when it runs."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vaekit import __version__

HEAVY = ("torch", "pandas", "sklearn", "matplotlib", "fastapi", "dask")

# in a fresh interpreter: build the app, print --version and every command's --help, then list the heavy modules loaded
PROBE = textwrap.dedent(f"""
    import contextlib, io, json, sys
    import typer
    import vaekit.cli.main as cli

    def paths(cmd, prefix):
        yield prefix
        for name, sub in getattr(cmd, "commands", {{}}).items():
            yield from paths(sub, [*prefix, name])

    out = io.StringIO()
    runs = [["--version"], *([*p, "--help"] for p in paths(typer.main.get_command(cli.app), []))]
    for argv in runs:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            cli.main(argv)
    print(json.dumps({{"runs": len(runs), "usages": out.getvalue().count("Usage:"),
                      "heavy": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
""")


def test_app_and_help_import_no_heavy_library(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["runs"] >= 20 and res["usages"] == res["runs"] - 1, res  # every command's --help was printed
    assert res["heavy"] == [], f"building the CLI, --version or --help imported {res['heavy']}"


@pytest.mark.parametrize("entry", ["vaekit", "python -m vaekit.cli"])
def test_version(entry: str) -> None:
    script = Path(sys.executable).with_name("vaekit")
    if entry == "vaekit" and not script.is_file():
        pytest.skip("no vaekit console script beside this interpreter (package not installed)")
    argv = [str(script)] if entry == "vaekit" else [sys.executable, "-m", "vaekit.cli"]
    p = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=120)
    assert (p.returncode, p.stdout, p.stderr) == (0, f"vaekit {__version__}\n", "")


def test_train_defaults_are_the_config_defaults() -> None:
    """vaekit.cli.commands writes the defaults of TrainConfig/ModelConfig out (so as not to import the core); they
    must stay the dataclasses' own."""
    from vaekit.cli import commands
    from vaekit.core.config import ModelConfig, TrainConfig

    for written, config in ((commands._T, TrainConfig()), (commands._M, ModelConfig())):
        assert vars(written) == {k: getattr(config, k) for k in vars(written)}, type(config).__name__


def test_preload_imports_the_commands_modules() -> None:
    """preload() (for fork servers) imports the modules it names: none is misspelt or gone."""
    import vaekit.cli.main as cli

    cli.preload()
    assert all(name in sys.modules for name in cli.COMMAND_MODULES)
