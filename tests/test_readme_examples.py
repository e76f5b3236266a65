"""README.md's examples run as written, in order, on data a fresh install has (no network, no ../shared).

How blocks are found: every top-level fenced block whose info string is ``bash`` or ``python`` is an example, run
in README order in one scratch folder (later blocks use what earlier ones wrote: ``digits.npz``, ``runs/digits``,
``detector/`` ...). Not run: blocks with any other info string (```text, a bare ```), blocks whose first line is
``# not run:``, and, inside ``bash`` blocks, the lines listed in SKIP_LINES — commands that start a server and
never return (``vaekit explore``, ``vaekit serve``) and the Quickstart's ``make demo`` / ``make test`` (they
install into .venv from the network, and ``make test`` runs this test). A skipped line becomes a comment, so the
block's other lines still run.

How they run: ``bash`` blocks through ``bash -e`` with the venv's bin first on PATH (``python`` is the venv's),
``python`` blocks with the ``python`` first on that PATH (the warm one below); the working folder is a temp
folder, OMP_NUM_THREADS=1 unless set.

Budgets: with VAEKIT_EXAMPLE_FAST=1 (the default here; the test also passes it to the blocks) each key of
FAST_SUBSTITUTIONS is replaced by its value before a block runs — only training/sampling budgets, never a command's
meaning. Every key must change some runnable block, so a stale (or never matching) entry fails.
VAEKIT_EXAMPLE_FAST=0 runs the README verbatim.

Speed: ``vaekit`` imports PyTorch and scikit-learn, ~3–5 s per command on a 2-core machine, which for the ~30
commands in the README is more than the whole budget of this module. So, unless VAEKIT_EXAMPLE_REAL_CLI=1, the
``vaekit`` the bash blocks find first on PATH is the stdlib-only client of tests/warm_cli.py: a server that
imported ``vaekit.cli.main`` once forks a fresh child per command, which runs the console script's own ``main()``
with the command's argv, cwd, environment and stdin/stdout/stderr; its exit status is the command's.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.warm_cli import WarmCli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
FAST = os.environ.get("VAEKIT_EXAMPLE_FAST", "1") != "0"
REAL_CLI = os.environ.get("VAEKIT_EXAMPLE_REAL_CLI", "0") == "1"
BLOCK_TIMEOUT_S = 300 if FAST else 3600

# Budget options only (epochs, steps, samples): README text → the test's text, matched as whole options.
FAST_SUBSTITUTIONS = {
    "--epochs 20": "--epochs 2",
    "epochs=20": "epochs=2",
    "--k 1000": "--k 20",
    "k=1000)": "k=20)",
    "vaekit demo --out demo-report": "vaekit demo --out demo-report --epochs 2",
    'VAEAnomalyDetector(contamination="auto")': 'VAEAnomalyDetector(contamination="auto", max_steps=30, n_models=2)',
    "anomaly fit train.csv --out detector/": "anomaly fit train.csv --out detector/ --max-steps 30 --n-models 2",
    "max_steps=2000": "max_steps=30, n_samples=50",
    "--max-steps 2000": "--max-steps 30 --n-samples 50",
    "--steps 300 --finetune-steps 100": "--steps 2 --finetune-steps 1 --crop 64",
    "--max-steps 800": "--max-steps 20",
}

# bash lines that are not run (see the module docstring).
SKIP_LINES = re.compile(r"^\s*(vaekit\s+(explore|serve)\b|make\s)")


@dataclass
class Block:
    lang: str
    line: int  # 1-based README line of the opening fence
    section: str
    code: str

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.lang} block in '{self.section}')"


def readme_blocks(text: str) -> list[Block]:
    """Every top-level ```bash / ```python block in order, minus those whose first line is '# not run:'."""
    blocks, section, lang, start, body = [], "", None, 0, []
    for i, line in enumerate(text.splitlines(), 1):
        if lang is None:
            if line.startswith("#") and not line.startswith("#!"):
                section = line.lstrip("#").strip()
            m = re.match(r"^```\s*([\w+-]*)\s*$", line)
            if m:
                lang, start, body = m.group(1), i, []
        elif line.rstrip() == "```":
            code = "\n".join(body) + "\n"
            if lang in ("bash", "python") and not code.lstrip().startswith("# not run:"):
                blocks.append(Block(lang, start, section, code))
            lang = None
        else:
            body.append(line)
    assert lang is None, f"README.md:{start}: unclosed code fence"
    return blocks


def _substitution(old: str) -> re.Pattern[str]:
    """OLD as a whole option: "--epochs 20" leaves "--epochs 200" and "--epochs 20.5" alone; a key that ends in a
    bracket or quote may be followed by anything (``VAEAnomalyDetector(...).fit``)."""
    return re.compile(re.escape(old) + (r"(?![\w.])" if re.search(r"[\w.]$", old) else ""))


def prepared(block: Block) -> str:
    code = block.code
    if FAST:
        for old, new in FAST_SUBSTITUTIONS.items():
            code = _substitution(old).sub(lambda _, new=new: new, code)
    if block.lang == "bash":
        code = "\n".join(f"# skipped by tests/test_readme_examples.py: {line.strip()}" if SKIP_LINES.match(line)
                         else line for line in code.splitlines()) + "\n"
    return code


@pytest.fixture(scope="module")
def cli_bin(warm_cli: WarmCli) -> Path:
    """A folder to put first on PATH: the warm ``vaekit`` client (tests/warm_cli.py), or, with
    VAEKIT_EXAMPLE_REAL_CLI=1, an empty one (the venv's own ``vaekit`` is then found)."""
    if REAL_CLI:
        empty = Path(tempfile.mkdtemp(prefix="vx"))
        yield empty
        shutil.rmtree(empty, ignore_errors=True)
    else:
        yield warm_cli.bin


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    e.setdefault("OMP_NUM_THREADS", "1")
    e.update(MPLBACKEND="Agg", VAEKIT_EXAMPLE_FAST="1" if FAST else "0",
             PATH=os.pathsep.join([str(BIN), e.get("PATH", "")]))
    return e


# --- the tests -----------------------------------------------------------------------------------------------------
def test_blocks_are_marked_and_self_contained() -> None:
    text = README.read_text(encoding="utf-8")
    blocks = readme_blocks(text)
    sections = {b.section for b in blocks}
    for wanted in ("Command line", "Python API", "Anomaly detection", "Imputation", "Compression",
                   "Generation and latent exploration", "Deployment: export"):
        assert any(s.startswith(wanted) for s in sections), f"no runnable example in README section '{wanted}'"
    for b in blocks:
        assert "../shared" not in b.code, f"{b}: uses ../shared, which a fresh install does not have"
    stale = [k for k in FAST_SUBSTITUTIONS if not any(_substitution(k).search(b.code) for b in blocks)]
    assert not stale, f"FAST_SUBSTITUTIONS keys that change no runnable README block: {stale}"


@pytest.mark.slow(reason="every README example in sequence: ~60 s on 2 busy cores, OMP_NUM_THREADS=1")
def test_readme_examples_run(tmp_path: Path, env: dict[str, str], cli_bin: Path) -> None:
    run_env = {**env, "PATH": os.pathsep.join([str(cli_bin), env["PATH"]])}
    for n, block in enumerate(readme_blocks(README.read_text(encoding="utf-8"))):
        script = tmp_path / f"block_{n:02d}.{'sh' if block.lang == 'bash' else 'py'}"
        script.write_text(prepared(block))
        cmd = ["bash", "-e", script.name] if block.lang == "bash" else ["python", script.name]  # PATH's python
        t0 = time.perf_counter()
        p = subprocess.run(cmd, check=False, cwd=tmp_path, env=run_env, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=BLOCK_TIMEOUT_S)
        print(f"{block}: {time.perf_counter() - t0:.1f} s")  # shown with pytest -s
        if p.returncode:
            out = (p.stdout + p.stderr)[-4000:]
            pytest.fail(f"{block} exited with {p.returncode}:\n{script.read_text()}\n--- output (tail) ---\n{out}")
