"""Every committed results file says how it was made (provenance: commit, command, threads, CPU, load), and its
command is a step of benchmarks/run.py, so `python benchmarks/run.py` reproduces every figure from scratch. The
comparison ignores only what cannot change a result: the Python executable, absolute prefixes of this checkout and
of ../shared, the scratch folder of intermediate models (runs/, runs/bench/, /tmp/), quoting, and the operational
flags --resume, --snapshot-minutes and --no-progress."""
from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ROOT
from tests.helpers import load_benchmark

RESULTS = ROOT / "benchmarks" / "results"
OPERATIONAL = {"--resume": 0, "--snapshot-minutes": 1, "--no-progress": 0}
NOT_RESULTS = {"run_log.json"}  # written by run.py before each step; not a result


def _normal(args: list[str]) -> str:
    """One comparable string for a command (its arguments after the interpreter)."""
    if args[:2] == ["-m", "vaekit"]:
        args = ["vaekit", *args[2:]]
    out: list[str] = []
    skip = 0
    for a in args:
        if skip:
            skip -= 1
            continue
        if a in OPERATIONAL:
            skip = OPERATIONAL[a]
            continue
        a = a.replace(str(ROOT) + "/", "")
        a = re.sub(r"^/\S*?/(?=(benchmarks|runs)/)", "", a)  # the checkout a file was made in, wherever it was
        a = re.sub(r"^(\.\./|.*/)shared/data/", "DATA/", a)
        a = re.sub(r"^(runs/(bench/)?|/tmp/)", "RUNS/", a)
        out.append(a)
    return re.sub(r"\s+", " ", re.sub(r"[\"']", "", " ".join(out))).strip()


def _provenance(doc: Any) -> dict[str, Any] | None:
    p = doc.get("provenance") if isinstance(doc, dict) else None
    while isinstance(p, dict) and isinstance(p.get("provenance"), dict):  # some scripts nest it once more
        p = p["provenance"]
    return p


def _results() -> list[Path]:
    """The JSON files under benchmarks/results that git would commit (tracked, or new and not ignored): model folders
    kept beside a result (git-ignored) are not results. Outside a git checkout (an unpacked archive), every file."""
    git = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", str(RESULTS)],
                         cwd=ROOT, capture_output=True)
    if git.returncode == 0:
        files = sorted(ROOT / f for f in git.stdout.decode().split("\0") if f.endswith(".json"))
    else:
        files = sorted(RESULTS.rglob("*.json"))
    return [p for p in files if p.relative_to(RESULTS).as_posix() not in NOT_RESULTS and p.exists()]


def _commands(doc: dict[str, Any], prov: dict[str, Any]) -> list[str]:
    """The commands behind a file: its own record of them where it keeps one (a CLI run's result assembled with its
    command line; or ``reproduce_command``, today's spelling of a run made when a default was another, with its
    ``reproduce_note``), else its provenance command."""
    if isinstance(doc.get("reproduce_command"), str):
        assert doc.get("reproduce_note"), "a reproduce_command says why in reproduce_note"
        return [_normal(shlex.split(doc["reproduce_command"])[1:])]
    if isinstance(doc.get("commands"), list):
        return [_normal(shlex.split(c)) for c in doc["commands"]]
    if isinstance(doc.get("command"), str):
        return [_normal(shlex.split(doc["command"]))]
    return [_normal(shlex.split(prov["command"])[1:])]


def test_every_results_file_records_its_provenance() -> None:
    files = _results()
    assert len(files) > 30
    for f in files:
        prov = _provenance(json.loads(f.read_text()))
        assert prov, f"{f.relative_to(ROOT)} has no provenance"
        for key in ("commit", "command", "threads", "cpu", "loadavg_before"):
            assert key in prov, (f.relative_to(ROOT), key)
        assert re.fullmatch(r"[0-9a-f]{40}", prov["commit"]), f


def test_every_results_file_is_made_by_a_step_of_run_py() -> None:
    plan = load_benchmark("run").PLAN
    steps = {_normal(cmd[1:]): name for name, (_, cmd) in plan.items()}
    missing = []
    for f in _results():
        doc = json.loads(f.read_text())
        missing += [f"{f.relative_to(ROOT)}: {c}" for c in _commands(doc, _provenance(doc) or {"command": ""})
                    if c not in steps]
    assert not missing, "results made by commands that benchmarks/run.py does not run:\n" + "\n".join(missing)


@pytest.mark.parametrize(("a", "b"), [
    (f"python {ROOT}/benchmarks/t.py --out runs/bench/m --resume", "python3 benchmarks/t.py --out runs/m"),
    ("python /elsewhere/checkout/benchmarks/t.py --out /elsewhere/checkout/runs/m", "python benchmarks/t.py --out runs/m"),
    ("python benchmarks/t.py --vaekit-params {\"k\": 1}", "py benchmarks/t.py --vaekit-params {k: 1}"),
])
def test_the_comparison_ignores_only_what_cannot_change_a_result(a: str, b: str) -> None:
    assert _normal(shlex.split(a)[1:]) == _normal(shlex.split(b)[1:])
    assert _normal(shlex.split(a)[1:]) != _normal(shlex.split(a.replace("t.py", "u.py"))[1:])
    assert _normal(["t.py", "--threads", "1"]) != _normal(["t.py", "--threads", "2"])
