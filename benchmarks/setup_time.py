"""Set-up time of a fresh clone, as a new user meets it: `make install`, `make demo`, `make test`, each timed.

    python benchmarks/setup_time.py --out benchmarks/results/setup/setup_time.json [--cold]

Clones this repository's HEAD into a temporary folder (with ``../shared`` linked beside it where this checkout has
one), then runs the README's two commands with the install split out: ``make install`` (venv, packages, bytecode),
``make demo`` (the demo alone: the install is done), ``make test`` (the whole suite). ``--cold`` gives uv and pip
empty caches, so the install also downloads every package (as on a machine that never installed them); without
it the caches of this machine are used, as on a developer's second clone. Run it on an idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import ROOT, provenance  # noqa: E402

SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?)")


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int, str]:
    """Run CMD → (seconds, exit code, the output's last 6,000 characters)."""
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return time.perf_counter() - t, p.returncode, p.stdout[-6000:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cold", action="store_true", help="empty uv and pip caches: the install downloads everything")
    args = ap.parse_args()
    prov = provenance()  # before the run: its commit is the one cloned, its load average the one the run met
    work = Path(tempfile.mkdtemp(prefix="vaekit-setup-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTEST"))}
    if args.cold:
        env.update(UV_CACHE_DIR=str(work / "uv-cache"), PIP_CACHE_DIR=str(work / "pip-cache"))
    try:
        subprocess.run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(work / "p")], check=True)
        subprocess.run(["git", "checkout", "-q", prov["provenance"]["commit"]], cwd=work / "p", check=True)
        if (ROOT.parent / "shared").exists():
            (work / "shared").symlink_to((ROOT.parent / "shared").resolve())
        steps = {}
        for name in ("install", "demo", "test"):
            seconds, rc, tail = timed(["make", name], work / "p", env)
            steps[name] = {"seconds": round(seconds, 1), "rc": rc}
            print(f"make {name}: {seconds:.1f} s (exit {rc})", flush=True)
            if name == "test":
                last = [ln for ln in tail.splitlines() if re.search(r"\d+ (passed|failed)", ln)][-1:]
                steps[name]["summary"] = {kind: int(n) for n, kind in SUMMARY.findall(last[0] if last else "")}
                steps[name]["slowest"] = [ln.strip() for ln in tail.splitlines()
                                          if re.match(r"\s*[\d.]+s (call|setup|teardown) ", ln)]
            if rc:
                print(tail, file=sys.stderr)
                break
        total = sum(s["seconds"] for s in steps.values())
        result = {**prov, "cold_caches": args.cold, "steps": steps,
                  "both_commands_s": round(total, 1), "goal_s": 180, "goal_met": total <= 180 and len(steps) == 3
                  and all(s["rc"] == 0 for s in steps.values())}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"both commands: {total:.1f} s (goal 180 s) → {args.out}")
        return 0 if all(s["rc"] == 0 for s in steps.values()) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
