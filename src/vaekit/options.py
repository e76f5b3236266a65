"""Shared command-line parsing: comma lists, column kinds, and the options every command carries.

Defaults live in the config dataclasses and the estimators; these helpers only parse and name CLI options.
"""
from __future__ import annotations

import math
import re
from contextlib import contextmanager
from typing import Any, Iterator

import typer

from vaekit.errors import VaekitError


def device_option() -> Any:
    """--device: auto | cpu | cuda | cuda:N | mps (auto: a GPU when PyTorch sees one)."""
    return typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N | mps (auto: GPU if available).")


def threads_option() -> Any:
    """--threads: CPU threads; 0 = automatic (OMP_NUM_THREADS, else 1 for small models, all cores for large)."""
    return typer.Option(0, "--threads", min=0, help="CPU threads (0 = automatic: OMP_NUM_THREADS, else 1 for "
                        "small models and all cores for large ones).")


def prior_option() -> Any:
    """--prior: the model zoo's p(z) for a table estimator."""
    return typer.Option("standard_normal", "--prior", help="p(z): standard_normal | mog | vampprior (the model zoo; "
                        "of the top layer with --stochastic-layers > 1).")


def posterior_option() -> Any:
    return typer.Option("gaussian", "--posterior", help="q(z|x): gaussian | iaf (inverse autoregressive flow).")


def layers_option() -> Any:
    return typer.Option(1, "--stochastic-layers", help="Stochastic layers (> 1: hierarchical VAE, top-down "
                        "inference, --latent-dim each).")


ZOO_OPTIONS = {"prior": "--prior", "posterior": "--posterior", "stochastic_layers": "--stochastic-layers"}


def seed_option() -> Any:
    return typer.Option(0, "--seed", min=0, max=2**63 - 1, help="Random seed (same seed, same bytes).")


def ints(text: str, name: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise VaekitError(f"--{name} must be comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise VaekitError(f"--{name} must list positive integers, got {text!r}")
    return vals


def floats(text: str, name: str) -> list[float]:
    """'0,0.5,1' → [0.0, 0.5, 1.0]; at least one number, all finite."""
    try:
        vals = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise VaekitError(f"--{name} must be comma-separated numbers, got {text!r}") from None
    if not vals or not all(math.isfinite(v) for v in vals):
        raise VaekitError(f"--{name} must list finite numbers, got {text!r}")
    return vals


def names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def column_kinds(categorical: str, binary: str, continuous: str) -> dict[str, str]:
    """--categorical/--binary/--continuous column lists → {column: kind}; a column may have one kind only."""
    lists = {"categorical": names(categorical), "binary": names(binary), "continuous": names(continuous)}
    listed = [c for cols in lists.values() for c in cols]
    twice = sorted({c for c in listed if listed.count(c) > 1})
    if twice:
        raise VaekitError(f"column(s) {twice} given more than one kind (--categorical/--binary/--continuous)")
    return {c: kind for kind, cols in lists.items() for c in cols}


# --- bounded counts: a count option past its bound is one line (exit 2) before anything is allocated -----------------
MAX_SAMPLES = 100_000  # samples / neighbours / importance samples of one command
MAX_ROWS = 1_000_000  # synthetic table rows (drawn in chunks)
MAX_STEPS = 1_000  # interpolation / traversal steps
MAX_GRID = 100  # latent map: grid × grid tiles
MAX_K = 10_000  # latent samples per row of an anomaly score
MAX_IMPUTATIONS = 1_000  # completed copies of a table (impute --multiple) / draws per entry of its uncertainty


def count_option(default: int, *flags: str, hi: int, lo: int = 1, help: str = "") -> Any:
    """An integer option in lo..hi, the range stated in --help; outside it → one-line VaekitError naming the option
    (typer's ``min=``/``max=`` would print a three-line usage error instead)."""
    name = max(flags, key=len)

    def check(value: int) -> int:
        if value is not None and not lo <= value <= hi:
            raise VaekitError(f"{name} must be an integer in {lo}..{hi}, got {value}")
        return value

    return typer.Option(default, *flags, callback=check, help=f"{help.rstrip('.')} ({lo}..{hi}).".lstrip())


# --- API errors in CLI words ------------------------------------------------------------------------------------------
KIND_OPTIONS = "--categorical/--binary/--continuous"


@contextmanager
def cli_wording(source: object, **options: str) -> Iterator[None]:
    """Errors of the Python API raised inside, worded for the command line (same error class): a leading ``X:`` (the
    API's name for the data) becomes ``source`` (the file), and each parameter name in ``options`` its CLI option
    (``allow_missing="--allow-missing"``)."""
    try:
        yield
    except VaekitError as e:
        msg = str(e)
        if msg.startswith("X: "):
            msg = f"{source}: {msg[3:]}"
        for param, option in options.items():
            msg = re.sub(rf"(?<![\w-]){re.escape(param)}(?![\w-])", option, msg)
        if msg == str(e):
            raise
        raise type(e)(msg) from None
