"""The root ``vaekit`` app: it adds each job's typer app, guards the user's files and maps errors to exit codes.

Commands hold no logic beyond argument handling; bad input → one line on stderr and exit code 2, no traceback.
Building the app imports no PyTorch, pandas, scikit-learn or matplotlib (``vaekit --version`` / ``--help`` are fast):
each command imports the modules it needs when it runs (tests/cli/test_main.py).
"""
from __future__ import annotations

import importlib
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer

from vaekit import __version__
from vaekit.cli.commands import app as core_app
from vaekit.deploy.cli import app as deploy_app
from vaekit.errors import VaekitError
from vaekit.files import protect_inputs, release_inputs
from vaekit.jobs.anomaly.cli import app as anomaly_app
from vaekit.jobs.compress.cli import app as compress_app
from vaekit.jobs.explore.cli import app as explore_app
from vaekit.jobs.generate.cli import app as generate_app
from vaekit.jobs.impute.cli import app as impute_app

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Variational autoencoders: train, evaluate, sample, reconstruct, demo, and the five jobs "
                       "(generate, compress, anomaly, impute, latent/explore).")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vaekit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True,
                                                 help="Print the version and exit.")) -> None:
    """Variational autoencoders: train, evaluate, sample, reconstruct, demo, and the five jobs."""


app.add_typer(core_app)                        # train, eval, sample, reconstruct, demo
app.add_typer(generate_app, name="generate")   # generate fit | sample
app.add_typer(compress_app)                    # compress, decompress, codec train
app.add_typer(anomaly_app, name="anomaly")     # anomaly fit | score
app.add_typer(impute_app)                      # impute, inpaint
app.add_typer(explore_app)                     # explore, latent …
app.add_typer(deploy_app)                      # export (ONNX / TorchScript)

# the heavy modules behind the commands (each command imports its own when it runs)
COMMAND_MODULES = ("vaekit.core.workflows", "vaekit.cli.demo", "vaekit.jobs.generate.files",
                   "vaekit.jobs.compress.lossless", "vaekit.jobs.compress.lossy", "vaekit.jobs.compress.lossy_train",
                   "vaekit.jobs.anomaly.files", "vaekit.jobs.impute.files", "vaekit.jobs.impute.inpaint",
                   "vaekit.jobs.explore.latent", "vaekit.deploy.export")
# what a command imports only when it runs: PyTorch's first optimizer imports torch._dynamo (~1.4 s); typer's
# parameter adapters import pydantic; the trainer tries TensorBoard (absent unless installed)
LAZY_DEPENDENCIES = ("torch._dynamo", "typer._adapters", "typer._click.decorators", "torch.utils.tensorboard")


def preload() -> None:
    """Import the modules behind every command now: for a process that imports the CLI once and then forks a child
    per command, so that the children share them (tests/test_readme_examples.py, benchmarks/hostile_inputs.py)."""
    for name in COMMAND_MODULES:
        importlib.import_module(name)
    for name in LAZY_DEPENDENCIES:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional package, or another version's layout: only a slower first command
            pass


OUTPUT_OPTIONS = ("-o", "--out", "--plot", "--uncertainty")


def _paths(argv: list[str]) -> tuple[list[str], list[str]]:
    """(values of output options, every other non-option token and option value) of a command line."""
    outs: list[str] = []
    ins: list[str] = []
    i = 0
    while i < len(argv):
        name, eq, val = argv[i].partition("=")
        if name in OUTPUT_OPTIONS:
            if eq:
                outs.append(val)
            elif i + 1 < len(argv):
                outs.append(argv[i + 1])
                i += 1
        elif not argv[i].startswith("-"):
            ins.append(argv[i])
        elif eq and name.startswith("--"):
            ins.append(val)
        i += 1
    return outs, ins


def _guard_outputs(argv: list[str]) -> None:
    """Nothing the user gave us is overwritten: existing input paths become write-protected for this command, and two
    outputs may not name the same file."""
    outs, ins = _paths(argv)
    seen: set[Path] = set()
    for o in outs:
        r = Path(o).resolve()
        if r in seen:
            raise VaekitError(f"{o}: named for two outputs of this command; give each output its own path")
        seen.add(r)
    protect_inputs(p for p in ins if p and Path(p).exists())


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      file: object = None, line: str | None = None) -> None:
    """Warnings during a command: one line ``warning: …`` on stderr (no file name, no source line)."""
    typer.echo(f"warning: {' '.join(str(message).split())}", err=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point: VaekitError and file errors become one line on stderr and exit code 2; warnings one line each."""
    try:
        _guard_outputs(list(sys.argv[1:] if argv is None else argv))
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            app(args=argv, standalone_mode=True)
    except VaekitError as e:
        typer.echo(f"error: {e}", err=True)
        raise SystemExit(2) from None
    except OSError as e:  # missing, unreadable, existing or wrong-kind paths
        typer.echo(f"error: {f'{e.filename}: ' if e.filename else ''}{e.strerror or e}", err=True)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise SystemExit(130) from None
    finally:
        release_inputs()


if __name__ == "__main__":
    main()
