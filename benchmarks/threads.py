"""Threads: a small anomaly fit and one binarized-MNIST training epoch at 1 and 2 threads, alone and beside two
competing CPU-bound processes — the measurement behind vaekit.runtime's thread rule.

    python benchmarks/threads.py            # → benchmarks/results/threads/threads.{json,md}

Each case runs in a fresh subprocess (its own thread pool) with OMP_NUM_THREADS and --threads set to the count;
rounds are interleaved in random order and the median of ``--repeats`` runs is reported with min and max.
The competing load is two processes each running 1-thread float32 matmuls in a loop (other jobs on the machine).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from provenance import provenance  # noqa: E402

ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data"

ANOMALY = """
import sys, time, numpy as np
from vaekit import VAEAnomalyDetector
d = np.load(sys.argv[1]); X = d["X"]
t = time.perf_counter(); VAEAnomalyDetector(random_state=0, n_threads=int(sys.argv[2])).fit(X)
print(time.perf_counter() - t)
"""
EPOCH = """
import sys, time, numpy as np, torch
from vaekit import ModelConfig, TrainConfig, VAE, Trainer, prepare
x = np.load(sys.argv[1])["train"]
m = VAE(ModelConfig(input_shape=(784,), latent_dim=40, hidden=(300, 300)))
xt, _ = prepare(x, m.likelihood, "train")
cfg = TrainConfig(epochs=1, objective="elbo", warmup_epochs=0, precision="fp32", num_threads=int(sys.argv[2]),
                  schedule="constant", device="cpu")
t = time.perf_counter(); Trainer(m, cfg, progress=False).fit(xt); print(time.perf_counter() - t)
"""
LOAD = """
import torch
torch.set_num_threads(1)
a = torch.randn(512, 512)
while True:
    a = torch.tanh(a @ a / 512)
"""


def run_case(code: str, arg: str, n: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(n)}
    p = subprocess.run([sys.executable, "-c", code, arg, str(n)], capture_output=True, text=True, env=env,
                       timeout=1800, check=True)
    return float(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--anomaly-set", default="cardio")
    ap.add_argument("--out", default=str(HERE / "results" / "threads"))
    args = ap.parse_args()
    jobs = {"anomaly fit (%s, default detector)" % args.anomaly_set: (ANOMALY, str(DATA / "anomaly" / f"{args.anomaly_set}.npz")),
            "MNIST epoch (784-300-300-40, ELBO fp32)": (EPOCH, str(DATA / "binarized_mnist.npz"))}
    cases = [(job, n, loaded) for job in jobs for n in (1, 2) for loaded in (False, True)]
    times: dict[tuple[str, int, bool], list[float]] = {c: [] for c in cases}
    rng = random.Random(0)
    for _ in range(args.repeats):
        order = cases[:]
        rng.shuffle(order)
        for job, n, loaded in order:
            load = [subprocess.Popen([sys.executable, "-c", LOAD], env={**os.environ, "OMP_NUM_THREADS": "1"})
                    for _ in range(2 if loaded else 0)]
            try:
                time.sleep(0.5 if loaded else 0)
                times[(job, n, loaded)].append(run_case(*jobs[job], n))
            finally:
                for p in load:
                    p.kill()
                    p.wait()
    rows = [{"job": job, "threads": n, "competing_processes": 2 if loaded else 0,
             "median_s": statistics.median(t), "min_s": min(t), "max_s": max(t), "runs": t}
            for (job, n, loaded), t in times.items()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": "threads", "rows": rows, **provenance(sys.argv)}
    (out / "threads.json").write_text(json.dumps(doc, indent=2))
    lines = ["| job | threads | competing processes | median s | min–max s |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['job']} | {r['threads']} | {r['competing_processes']} | {r['median_s']:.2f} | "
                     f"{r['min_s']:.2f}–{r['max_s']:.2f} |")
    (out / "threads.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
