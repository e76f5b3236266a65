"""Distributed training throughput on this machine: one process (1 and 2 threads) against torchrun with 2 processes
(gloo, 1 thread each), the same global batch, seed and recipe, on binarized MNIST.

    python benchmarks/ddp_throughput.py [--rows 20000] [--epochs 3] [--repeats 2]
    # → benchmarks/results/scale/ddp.json

Throughput = training rows / training seconds (metrics.csv's ``time`` column: the loop without start-up and data
loading). Each configuration runs ``--repeats`` times, interleaved; the median is reported with min and max. The
test NLL (k = 100, 1000 test images) of each run shows the models are alike. Expect little from 2 processes on 2
cores: both already compete with the 1-process run's second thread, and every step adds two all-reduces.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from provenance import provenance  # noqa: E402

ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data" / "binarized_mnist.npz"
BIN = Path(sys.executable).parent
OUT = HERE / "results" / "scale" / "ddp.json"


def run(kind: str, data: Path, out: Path, epochs: int) -> dict[str, float]:
    train = ["train", "--data", str(data), "--out", str(out), "--epochs", str(epochs), "--no-progress", "--seed", "0",
             "--fixed-schedule", "--overwrite"]
    if kind == "ddp-2proc":
        cmd = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node=2", "--no-python", str(BIN / "vaekit"), *train]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
    else:
        n = kind.split("-")[1][0]
        cmd = [str(BIN / "vaekit"), *train, "--threads", n]
        env = {**os.environ, "OMP_NUM_THREADS": n}
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=3600)
    wall = time.perf_counter() - t0
    with (out / "metrics.csv").open() as f:
        train_s = float(list(csv.DictReader(f))[-1]["time"])
    ev = subprocess.run([str(BIN / "vaekit"), "eval", str(out), "--data", str(data), "--k", "100", "--limit", "1000",
                         "--json", "--threads", "2"], check=True, capture_output=True, text=True, timeout=3600)
    return {"train_s": train_s, "wall_s": wall, "nll_k100": json.loads(ev.stdout)["nll"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    kinds = ["1proc-1thread", "1proc-2threads", "ddp-2proc"]
    res: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        d = np.load(DATA)
        data = Path(tmp) / "mnist_subset.npz"
        np.savez(data, train=d["train"][:args.rows], valid=d["valid"][:2000], test=d["test"][:1000])
        for r in range(args.repeats):
            for k in kinds if r % 2 == 0 else kinds[::-1]:
                res[k].append(run(k, data, Path(tmp) / k, args.epochs))
                print(k, res[k][-1], flush=True)
    rows = args.rows * args.epochs
    summary = {}
    for k, runs in res.items():
        tput = [rows / x["train_s"] for x in runs]
        summary[k] = {"rows_per_s_median": statistics.median(tput), "rows_per_s_min": min(tput),
                      "rows_per_s_max": max(tput), "nll_k100": [x["nll_k100"] for x in runs],
                      "wall_s": [x["wall_s"] for x in runs]}
    base = summary["1proc-1thread"]["rows_per_s_median"]
    for k in summary:
        summary[k]["ratio_vs_1proc_1thread"] = summary[k]["rows_per_s_median"] / base
    doc = {"benchmark": "DDP throughput, binarized MNIST subset, default recipe (IWAE k=10, bf16 where native)",
           "rows": args.rows, "epochs": args.epochs, "repeats": args.repeats, "results": summary,
           "provenance": provenance(sys.argv)}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
