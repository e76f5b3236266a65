"""What every results file records: git commit (and whether the tree was dirty), the exact command, threads,
CPU model and its relevant flags, load average before the run, Python/PyTorch versions, the date."""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def dirty_paths() -> list[str]:
    """Tracked files changed since the commit, outputs under benchmarks/results/ left out: ``run.py`` logs each step
    there before the next one starts, and no script's code lives there."""
    paths = _git("diff", "--name-only", "HEAD").splitlines()
    return [p for p in paths if not p.startswith("benchmarks/results/")]


def cpu() -> dict[str, Any]:
    from vaekit.runtime import cpu_flags

    model, flags = platform.processor(), cpu_flags()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {"model": model, "flags": [f for f in FLAGS if f in flags],
            "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}


def provenance(argv: list[str] | None = None, threads: int | None = None) -> dict[str, Any]:
    import torch

    changed = dirty_paths()
    # a copy without .git (the device machine gets the working tree only): the caller passes the commit along
    commit = _git("rev-parse", "HEAD") or os.environ.get("VAEKIT_COMMIT", "")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"provenance": {
        "commit": commit, "dirty": bool(changed), "dirty_paths": changed[:20], "gpu": gpu,
        "command": " ".join([Path(sys.executable).name, *(sys.argv if argv is None else argv)]),
        "threads": threads if threads is not None else torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "cpu": cpu(),
        "loadavg_before": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(), "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}}
