"""Out-of-core training: peak memory and speed of ``vaekit train --stream`` against in-memory training, on generated
``.npy`` files of 50k and 200k rows × 784 float32 values (150 MB and 600 MB).

    python benchmarks/stream_memory.py      # → benchmarks/results/scale/stream_memory.json

One epoch each (ELBO, 784-64-2 MLP, 1 thread), in fresh processes; peak RSS from the kernel (ru_maxrss), training
time from metrics.csv. The files are written (and so sit in the page cache) before the runs: this measures memory,
not disk speed.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from provenance import provenance  # noqa: E402

VAEKIT = Path(sys.executable).parent / "vaekit"
OUT = HERE / "results" / "scale" / "stream_memory.json"


def peak(cmd: list[str]) -> float:
    """Peak RSS (MB) of ``cmd``, measured by GNU time around it (a child's own ru_maxrss can include the parent's
    pages it shared before exec); without /usr/bin/time, the child's rusage."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if os.path.exists("/usr/bin/time"):
        p = subprocess.run(["/usr/bin/time", "-f", "peak_kb=%M", *cmd], env=env, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr[-2000:]
        return int(p.stderr.rsplit("peak_kb=", 1)[1].split()[0]) / 1024
    q = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(q.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, cmd
    return usage.ru_maxrss / 1024


def main() -> None:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        for rows in (50_000, 200_000):
            path = Path(tmp) / f"x{rows}.npy"
            mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, 784))
            for i in range(0, rows, 10_000):
                mm[i:i + 10_000] = rng.random((min(10_000, rows - i), 784), dtype=np.float32)
            mm.flush()
            del mm
            for mode in ("in-memory", "stream"):
                out = Path(tmp) / f"run_{rows}_{mode}"
                cmd = [str(VAEKIT), "train", "--data", str(path), "--out", str(out), "--epochs", "1", "--hidden", "64",
                       "--latent-dim", "2", "--likelihood", "gaussian", "--objective", "elbo", "--k", "1",
                       "--no-progress", "--threads", "1", "--precision", "fp32"] + (["--stream"] if mode == "stream"
                                                                                   else [])
                mb = peak(cmd)
                with (out / "metrics.csv").open() as f:
                    t = float(list(csv.DictReader(f))[-1]["time"])
                results.append({"rows": rows, "file_mb": round(path.stat().st_size / 2**20, 1), "mode": mode,
                                "peak_rss_mb": round(mb, 1), "train_s": round(t, 2),
                                "rows_per_s": round(0.9 * rows / t)})
                print(results[-1], flush=True)
            path.unlink()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"benchmark": "peak RSS, in-memory vs --stream training, 1 epoch", "results": results,
                               "provenance": provenance(sys.argv, threads=1)}, indent=1))


if __name__ == "__main__":
    main()
