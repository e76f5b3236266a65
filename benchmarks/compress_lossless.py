"""Benchmark: lossless bits-back coding (BB-ANS) of MNIST test sets vs gzip, bz2, lzma, PNG and lossless WebP.

a. statically binarized MNIST test (10,000 × 784 bits) with a Bernoulli VAE;
b. 8-bit MNIST test (10,000 × 784 bytes) with a discretized-logistic VAE.
Bits/dim = 8 · file bytes / (10,000 · 784), whole test set in one file for every method. Generic compressors get
the most favourable input layout (binarized: bit-packed; 8-bit: raw bytes); PNG and WebP get the images tiled into
one 100 × 100 mosaic (1-bit PNG for binarized data). The VAE's own −ELBO (Monte Carlo) is reported next to the
coded size to give the coder's overhead. Encode/decode speed is MB/s of raw input (one byte per pixel), the whole
test set in one call (lanes of items coded side by side, networks batched; see vaekit.jobs.compress.bitsback), the
bits/dim count every byte of the file. The previous one-item-at-a-time coder's figures are kept under "before".

    python benchmarks/compress_lossless.py --bin-model RUN/model --u8-model RUN8/model --out benchmarks/results/compress
    python benchmarks/compress_lossless.py --u8-model S0/model S1/model S2/model --name lossless_u8_conv  # 3 seeds
"""
from __future__ import annotations

import argparse
import bz2
import gzip
import io
import json
import lzma
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from provenance import provenance
from summarise_seeds import spread

from vaekit.core.checkpoint import load_model
from vaekit.data import load_splits
from vaekit.files import atomic_write_text
from vaekit.jobs.compress.bitsback import BitsBackCodec
from vaekit.runtime import resolve_threads

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
BEFORE = {"binarized": {"coder": "one item at a time, float64 network, 1 thread", "bits_per_dim": 0.1749,
                        "encode_MB_s": 0.049, "decode_MB_s": 0.051, "model": "runs/bench/bits_bin (500-500, ELBO)"},
          "8bit": {"coder": "one item at a time, float64 network, 1 thread", "bits_per_dim": 1.4288,
                   "encode_MB_s": 0.029, "decode_MB_s": 0.038, "model": "runs/bench/bits_u8 (500-500 elu, 25 min)"},
          "source": "benchmarks/results/compress/lossless.json at commit fbeb797"}
PUBLISHED = {"binarized": {"BB-ANS (Townsend et al. 2019)": 0.19},
             "8bit": {"BB-ANS": 1.41, "Bit-Swap (Kingma et al. 2019)": 1.29, "bz2 (as published)": 1.42}}


def mosaic(x: np.ndarray, side: int = 28) -> np.ndarray:
    n = len(x)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    pad = np.zeros((rows * cols, side, side), x.dtype)
    pad[:n] = x.reshape(n, side, side)
    return pad.reshape(rows, cols, side, side).transpose(0, 2, 1, 3).reshape(rows * side, cols * side)


def baselines(x: np.ndarray, binary: bool) -> dict[str, int]:
    raw = np.packbits(x.reshape(-1)).tobytes() if binary else x.astype(np.uint8).tobytes()
    out = {"gzip -9": len(gzip.compress(raw, 9)), "bz2 -9": len(bz2.compress(raw, 9)),
           "lzma -9e": len(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME))}
    img = mosaic(x.astype(np.uint8) * (255 if binary else 1))
    buf = io.BytesIO()
    (Image.fromarray(img).convert("1") if binary else Image.fromarray(img)).save(buf, format="PNG", optimize=True)
    out["PNG (optimize)"] = len(buf.getvalue())
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="WEBP", lossless=True, quality=100, method=6)
    out["WebP lossless (m6)"] = len(buf.getvalue())
    return out


def run(name: str, model_dir: str, loaded: tuple[Any, dict[str, Any]], x: np.ndarray, binary: bool,
        latent_bits: int, lanes: int, batch: int) -> dict[str, Any]:
    model, extra = loaded
    codec = BitsBackCodec(model, latent_bits=latent_bits, lanes=lanes, batch=batch)
    steps: list[int] = []
    dims = x.size
    t = time.perf_counter()
    blob = codec.encode(x, progress=steps.append)
    t_enc = time.perf_counter() - t
    t = time.perf_counter()
    y = codec.decode(blob)
    t_dec = time.perf_counter() - t
    assert np.array_equal(y, x.reshape(len(x), -1)), "bits-back round trip failed"
    neg_elbo = codec.neg_elbo_bits(x, n_samples=20) / dims
    base = {k: 8 * v / dims for k, v in baselines(x, binary).items()}
    bpd = 8 * len(blob) / dims
    raw_mb = x.size / 1e6
    return {"dataset": name, "items": len(x), "model_dir": str(model_dir), "model": model.config.to_dict(),
            "train": extra.get("train_config"), "latent_bits": latent_bits, "lanes": lanes,
            "network_batch": codec.batch, "steps": len(steps), "max_lanes_used": max(steps, default=0),
            "vaekit_bits_per_dim": bpd, "file_bytes": len(blob),
            "neg_elbo_bits_per_dim": neg_elbo, "overhead_vs_neg_elbo": bpd / neg_elbo - 1,
            "encode_s": t_enc, "decode_s": t_dec, "encode_MB_s": raw_mb / t_enc, "decode_MB_s": raw_mb / t_dec,
            "baselines_bits_per_dim": base, "published": PUBLISHED["binarized" if binary else "8bit"],
            "before": BEFORE["binarized" if binary else "8bit"],
            "round_trip_exact": True}


def choose_latent_bits(loaded: tuple[Any, dict[str, Any]], data: Path, candidates: list[int], n: int, lanes: int,
                       batch: int) -> tuple[int, dict[int, float]]:
    """The latent bucket bits with the lowest rate on the first n images of the model's own VALIDATION split (the
    split its training carved with its seed, or the file's own), never on the test images."""
    model, extra = loaded
    seed = int((extra.get("train_config") or {}).get("seed", 0))
    x = load_splits(data, seed=seed)["valid"].x
    x = np.asarray(x).reshape(len(x), -1)[:n].astype(np.uint8)
    rates = {b: 8 * len(BitsBackCodec(model, latent_bits=b, lanes=lanes, batch=batch).encode(x)) / x.size
             for b in candidates}
    return min(rates, key=lambda b: (rates[b], b)), rates


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± s.d. over the models (training seeds) of one dataset."""
    out: dict[str, Any] = {"dataset": rows[0]["dataset"], "models": len(rows),
                           "model_dirs": [r["model_dir"] for r in rows],
                           "rows_from": [r.get("from_file", "this run") for r in rows],
                           "vaekit_bits_per_dim_per_seed": [r["vaekit_bits_per_dim"] for r in rows]}
    for key in ("vaekit_bits_per_dim", "neg_elbo_bits_per_dim", "overhead_vs_neg_elbo", "encode_MB_s", "decode_MB_s"):
        out[key] = spread([r[key] for r in rows])
    out["baselines_bits_per_dim"] = rows[0]["baselines_bits_per_dim"]
    out["wins_over_best_baseline"] = all(r["vaekit_bits_per_dim"] < min(r["baselines_bits_per_dim"].values())
                                         for r in rows)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-model", nargs="*", default=[], help="binarized-MNIST model folder(s), one per seed")
    ap.add_argument("--u8-model", nargs="*", default=[], help="8-bit MNIST model folder(s), one per seed")
    ap.add_argument("--latent-bits", default="12", help="bucket bits per latent; a comma list: choose per model on "
                    "its validation images (--choose-n of them)")
    ap.add_argument("--choose-n", type=int, default=2000, help="validation images for choosing --latent-bits")
    ap.add_argument("--limit", type=int, default=0, help="code only the first N test images (smoke runs)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: the runtime's load-aware count; the "
                    "bytes are the same for any count, but a thread beyond the idle cores spins)")
    ap.add_argument("--lanes", type=int, default=1024, help="items coded side by side")
    ap.add_argument("--batch", type=int, default=0, help="rows per network call (0: the codec's automatic size)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/compress"))
    ap.add_argument("--name", default="lossless", help="results file stem: OUT/NAME.json and OUT/NAME.md")
    ap.add_argument("--with-rows", type=Path, nargs="*", default=[],
                    help="earlier results files whose rows (other seeds of the same recipe, coded in their own run) "
                         "join this run's in the over-seed summary; each keeps its source file and commit")
    args = ap.parse_args()
    if not args.bin_model and not args.u8_model:
        ap.error("give --bin-model and/or --u8-model")
    candidates = [int(b) for b in str(args.latent_bits).split(",")]
    args.threads = resolve_threads(args.threads or None)
    torch.set_num_threads(args.threads)
    prov = provenance(threads=args.threads)  # before the run: its load average is the one the run met
    results, summaries = [], []
    for models, name, binary, data in (
            (args.bin_model, "binarized MNIST test", True, lambda: np.load(SHARED / "binarized_mnist.npz")["test"]),
            (args.u8_model, "MNIST 8-bit test", False,
             lambda: np.load(SHARED / "mnist.npz")["x_test"].reshape(10000, 784))):
        if not models:
            continue
        x = data().astype(np.uint8)[:args.limit or None]
        rows = []
        for mdir in models:
            loaded = load_model(mdir)
            bits, rates = (candidates[0], {}) if len(candidates) == 1 else choose_latent_bits(
                loaded, SHARED / ("binarized_mnist.npz" if binary else "mnist.npz"), candidates, args.choose_n,
                args.lanes, args.batch)
            rows.append({**run(name, mdir, loaded, x, binary, bits, args.lanes, args.batch),
                         "latent_bits_validation_rates": rates})
        for r in rows:
            print(json.dumps(r, indent=1, default=str), flush=True)
        results += rows
        earlier = [{**r, "from_file": str(f), "from_commit": doc["provenance"]["commit"]}
                   for f in args.with_rows for doc in [json.loads(f.read_text())] for r in doc["results"]
                   if r["dataset"] == name and "from_file" not in r]
        if len(rows) + len(earlier) > 1:
            summaries.append(summary(earlier + rows))
    doc = {"machine": f"{platform.machine()}, threads {args.threads}", "torch": torch.__version__, "results": results,
           "summaries": summaries, "before_source": BEFORE["source"], **prov}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / f"{args.name}.json", json.dumps(doc, indent=1, default=str))
    lines = ["# Lossless compression (bits-back / BB-ANS), bits per dimension\n",
             "Whole test set coded into one file per method; every figure measured in the same run "
             f"({doc['machine']}; commit {doc['provenance']['commit'][:10]}"
             f"{' dirty' if doc['provenance']['dirty'] else ''}, load average before "
             f"{doc['provenance']['loadavg_before']}).\n"]
    for sm in summaries:
        b = sm["vaekit_bits_per_dim"]
        lines.append(f"\n**{sm['dataset']}, {sm['models']} training seeds: {b['mean']:.4f} ± {b['sd']:.4f} bits/dim** "
                     f"(s.d. over seeds; −ELBO {sm['neg_elbo_bits_per_dim']['mean']:.4f}; encode "
                     f"{sm['encode_MB_s']['mean']:.2f}, decode {sm['decode_MB_s']['mean']:.2f} MB/s; best baseline "
                     f"beaten by every seed: {sm['wins_over_best_baseline']}).")
    for r in results:
        lines += [f"\n## {r['dataset']} ({r['items']} images; model {r['model_dir']})\n", "| method | bits/dim |",
                  "|---|---:|", f"| **vaekit bits-back** | **{r['vaekit_bits_per_dim']:.4f}** |",
                  f"| (model −ELBO) | {r['neg_elbo_bits_per_dim']:.4f} |"]
        lines += [f"| {k} | {v:.4f} |" for k, v in sorted(r["baselines_bits_per_dim"].items(), key=lambda t: t[1])]
        lines += [f"| {k} (published) | {v} |" for k, v in r["published"].items()]
        lines.append(f"\nCoder overhead over −ELBO: {100 * r['overhead_vs_neg_elbo']:+.2f}%; encode "
                     f"{r['encode_MB_s']:.3f} MB/s, decode {r['decode_MB_s']:.3f} MB/s (raw bytes; {r['steps']} steps, "
                     f"up to {r['max_lanes_used']} item slots × 4 lanes, {r['network_batch']} rows per network call); "
                     f"round trip exact. Before (one item at a time, {r['before']['model']}): "
                     f"{r['before']['bits_per_dim']} bits/dim, encode {r['before']['encode_MB_s']} MB/s, decode "
                     f"{r['before']['decode_MB_s']} MB/s.")
        chosen = r.get("latent_bits_validation_rates") or {}
        lines.append(f"Latent buckets: 2^{r['latent_bits']} per dimension" + (
            " (chosen on validation images: " + ", ".join(f"{b} bits → {v:.4f}" for b, v in chosen.items()) + ")"
            if chosen else "") + ".")
    atomic_write_text(args.out / f"{args.name}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
