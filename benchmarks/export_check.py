"""Export check: train small models quickly, export them (``vaekit.deploy``), and measure per graph the max abs
difference of onnxruntime (and TorchScript) against PyTorch, and the latency of onnxruntime vs PyTorch eager at
batch sizes 1 and 256 (one thread each, float32).

    python benchmarks/export_check.py      # → benchmarks/results/deploy/export.{json,md}

Models: an MLP Bernoulli VAE and a conv Bernoulli VAE on scikit-learn's digits (8×8, scaled to [0, 1]), an anomaly
detector (score_type nll, mixed likelihood) on ../shared/data/anomaly/cardio.npz and a Bernoulli one on 2000
binarized-MNIST rows (scores ≈ 200 nats: float32 differences above 1e-4 in absolute terms) — all with tiny training
budgets: the point is the exported graphs, not the models' quality. Latency: median over repeats of one call on fixed inputs, after warm-up.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from provenance import provenance  # noqa: E402

from vaekit.core import workflows  # noqa: E402
from vaekit.core.config import ModelConfig, TrainConfig  # noqa: E402
from vaekit.deploy import export as ex  # noqa: E402
from vaekit.jobs.anomaly.detector import VAEAnomalyDetector  # noqa: E402

DATA = HERE.parent.parent / "shared" / "data"
BATCHES = (1, 256)


def median_ms(fn: Callable[[], Any], repeats: int) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def latency(graph: ex.Graph, raw: bytes) -> dict[str, Any]:
    sess = ex.onnx_session(raw, threads=1)
    names = [t["name"] for t in graph.inputs]
    out = {}
    for n in BATCHES:
        xs = graph.make_inputs(n, torch.Generator().manual_seed(n))
        feeds = {k: x.numpy() for k, x in zip(names, xs)}
        reps = 300 if n == 1 else 40

        def eager() -> None:
            with torch.no_grad():
                graph.module(*xs)

        pt, ort = median_ms(eager, reps), median_ms(lambda: sess.run(None, feeds), reps)
        out[str(n)] = {"pytorch_ms": pt, "onnxruntime_ms": ort, "speedup": pt / ort}
    return out


def digits_npz(path: Path) -> Path:
    from sklearn.datasets import load_digits

    x = (load_digits().data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    rng = np.random.default_rng(0)
    x = x[rng.permutation(len(x))]
    np.savez(path, train=x[:1400], valid=x[1400:1600], test=x[1600:])
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--anomaly-set", default="cardio")
    ap.add_argument("--out", default=str(HERE / "results" / "deploy"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows: list[dict[str, Any]] = []
    detector_checks: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_p = Path(tmp)
        data = digits_npz(tmp_p / "digits.npz")
        tcfg = TrainConfig(epochs=5, batch_size=64, precision="fp32", device="cpu", num_threads=1, warmup_epochs=0)
        folders: dict[str, tuple[Path, Any]] = {}
        t0 = time.perf_counter()
        for name, mcfg in {"digits MLP VAE (64-256-256-8, bernoulli)": ModelConfig(latent_dim=8, hidden=(256, 256)),
                           "digits conv VAE (1×8×8, channels 16-32, bernoulli)":
                               ModelConfig(input_shape=(1, 8, 8), arch="conv", channels=(16, 32), hidden=(128,),
                                           latent_dim=8)}.items():
            run = tmp_p / f"run{len(folders)}"
            model, _ = workflows.train(data, run, mcfg, tcfg, progress=False)
            folders[name] = (run / "model", ex.vae_graphs(model))
        X = np.load(DATA / "anomaly" / f"{args.anomaly_set}.npz")["X"]
        det = VAEAnomalyDetector(n_models=3, k=16, max_steps=150, random_state=0, device="cpu", n_threads=1).fit(X)
        det.save(tmp_p / "detector")
        det_name = (f"{args.anomaly_set} anomaly detector (nll, 3 members, k=16, {X.shape[1]} columns → "
                    f"{det.models_[0].config.data_dim} encoded)")
        folders[det_name] = (tmp_p / "detector", [ex.score_graph(det)])
        xb = np.load(DATA / "binarized_mnist.npz")["train"][:2000].reshape(2000, -1).astype(np.float64)
        det = VAEAnomalyDetector(likelihood="bernoulli", n_models=2, k=16, latent_dim=16, hidden=(256,), max_steps=100,
                                 random_state=0, device="cpu", n_threads=1).fit(xb)
        det.save(tmp_p / "detector_mnist")
        folders["binarized MNIST anomaly detector (nll, bernoulli 784-256-16, 2 members, k=16)"] = \
            (tmp_p / "detector_mnist", [ex.score_graph(det)])
        train_s = time.perf_counter() - t0
        for i, (name, (folder, graphs)) in enumerate(folders.items()):
            docs = {fmt: ex.export(folder, tmp_p / f"export_{fmt}_{i}", fmt) for fmt in ("onnx", "torchscript")}
            if "detector_check" in docs["onnx"]:
                detector_checks[name] = docs["onnx"]["detector_check"]
            for graph in graphs:
                g_doc = docs["onnx"]["graphs"][graph.name]
                raw = (tmp_p / f"export_onnx_{i}" / g_doc["file"]).read_bytes()
                rows.append({"model": name, "graph": g_doc["file"],
                             "inputs": {t["name"]: t["shape"] for t in g_doc["inputs"]},
                             "max_abs_diff_onnxruntime": g_doc["check"]["max_abs_diff"],
                             "max_scaled_diff_onnxruntime": g_doc["check"]["max_scaled_diff"],
                             "max_abs_diff_torchscript": docs["torchscript"]["graphs"][graph.name]["check"]["max_abs_diff"],
                             "check_batch_sizes": g_doc["check"]["batch_sizes"], "latency": latency(graph, raw)})
                print(rows[-1]["graph"], rows[-1]["max_abs_diff_onnxruntime"], rows[-1]["latency"], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": "export_check", "tolerance": ex.TOLERANCE, "threads": 1, "train_seconds": train_s,
           "rows": rows, "detector_check": detector_checks, "onnx_opset": ex.OPSET,
           "onnxruntime": ex._version("onnxruntime"), "onnx": ex._version("onnx"), **provenance(sys.argv, 1)}
    (out / "export.json").write_text(json.dumps(doc, indent=2))
    lines = ["# Export check (`benchmarks/export_check.py`)", "",
             f"Float32 graphs; max abs difference vs PyTorch eager on random inputs at batch sizes "
             f"{', '.join(map(str, rows[0]['check_batch_sizes']))} (passes if every difference ≤ {ex.TOLERANCE:g} · "
             f"max(1, |value|); relative = max of difference / max(1, |value|)); latency = median "
             f"of one call, 1 thread, onnxruntime {doc['onnxruntime']} vs PyTorch {torch.__version__} eager.", "",
             "| model | graph | max abs diff onnxruntime (relative) | max abs diff TorchScript "
             "| batch 1: PyTorch / ORT ms | batch 256: PyTorch / ORT ms |", "|---|---|---|---|---|---|"]
    for r in rows:
        lat = [r["latency"][str(n)] for n in BATCHES]
        lines.append(f"| {r['model']} | `{r['graph']}` | {r['max_abs_diff_onnxruntime']:.2e} "
                     f"({r['max_scaled_diff_onnxruntime']:.1e}) | "
                     f"{r['max_abs_diff_torchscript']:.2e} | "
                     + " | ".join(f"{v['pytorch_ms']:.3f} / {v['onnxruntime_ms']:.3f} ({v['speedup']:.1f}×)"
                                  for v in lat) + " |")
    for name, c in detector_checks.items():
        lines += ["", f"{name}: `score.onnx` with the detector's own ε vs `decision_function` (float64) on "
                  f"{c['rows']} rows: max abs diff {c['max_abs_diff']:.2e}, max relative {c['max_rel_diff']:.2e}."]
    (out / "export.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
