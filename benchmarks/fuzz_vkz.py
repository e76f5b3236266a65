"""Fuzz the .vkz decoders: mutated, truncated, extended and re-sealed (valid checksum) files.

Every case must end in the documented error (CorruptFileError / WrongModelError) or decode to exactly the
original data; anything else (another exception, a hang, a large allocation) is a failure. Re-sealed cases
recompute the checksum after mutating, so they reach the header parser and the decoders themselves. A re-sealed
file is a forgery with a valid checksum: the bits-back decoder still catches it through the data digest in its
header; the lossy decoder may legitimately decode such a forged payload to another image of the declared size
("forged-decoded-other", counted but not a failure), while an un-sealed mutation must never decode differently.

    python benchmarks/fuzz_vkz.py --codec bitsback --cases 100000 --out benchmarks/results/compress/fuzz_bitsback.json
    python benchmarks/fuzz_vkz.py --codec lossy --cases 100000 --out benchmarks/results/compress/fuzz_lossy.json
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vaekit.core.config import ModelConfig
from vaekit.core.model import VAE
from vaekit.errors import CorruptFileError, WrongModelError
from vaekit.files import atomic_write_text
from vaekit.jobs.compress.bitsback import BitsBackCodec
from vaekit.jobs.compress.container import DIGEST_BYTES, _digest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import provenance  # noqa: E402


def mutate(blob: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One random mutation; about half are re-sealed with a fresh checksum."""
    body = bytearray(blob[:-DIGEST_BYTES])
    kind = str(rng.choice(["flip", "byte", "truncate", "extend", "splice", "zero-run"]))
    if kind == "flip":
        for _ in range(int(rng.integers(1, 4))):
            body[int(rng.integers(len(body)))] ^= 1 << int(rng.integers(8))
    elif kind == "byte":
        body[int(rng.integers(len(body)))] = int(rng.integers(256))
    elif kind == "truncate":
        body = body[:int(rng.integers(len(body)))]
    elif kind == "extend":
        body += rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    elif kind == "splice":
        i, j = sorted(int(v) for v in rng.integers(0, len(body), 2))
        body = body[:i] + body[j:]
    else:
        i = int(rng.integers(len(body)))
        body[i:i + int(rng.integers(1, 32))] = bytes(min(32, len(body) - i))
    if rng.random() < 0.5:
        return bytes(body) + _digest(bytes(body)), kind + "+reseal"
    return bytes(body) + blob[-DIGEST_BYTES:], kind


def setup_bitsback(rng: np.random.Generator) -> tuple[bytes, Callable[[bytes], np.ndarray], np.ndarray]:
    """A tiny Bernoulli VAE and 4 coded binary rows."""
    model = VAE(ModelConfig(input_shape=(16,), latent_dim=3, hidden=(16,))).eval()
    codec = BitsBackCodec(model, latent_bits=8)
    x = (rng.random((4, 16)) < 0.3).astype(np.uint8)
    return codec.encode(x), codec.decode, x


def setup_lossy(rng: np.random.Generator) -> tuple[bytes, Callable[[bytes], np.ndarray], np.ndarray]:
    """A tiny two-level grayscale codec (trained for a few steps) and one coded 20×20 image."""
    from vaekit.jobs.compress.lossy import compress_image, decompress_image, load_codec
    from vaekit.jobs.compress.lossy_train import train_codec

    imgs = [np.clip(rng.normal(128, 40, (32, 32)), 0, 255).astype(np.uint8) for _ in range(8)]
    with tempfile.TemporaryDirectory() as d:
        train_codec(imgs, d, [200, 20], N=8, M=8, n_down=2, steps=40, finetune_steps=10, batch_size=4, crop=16)
        codec = load_codec(d)
    blob = compress_image(codec, imgs[0][:20, :20], 0)
    return blob, lambda data: decompress_image(data, codec), decompress_image(blob, codec)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codec", choices=["bitsback", "lossy"], default="bitsback")
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/compress/fuzz.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    prov = provenance(threads=1)  # before the run: its load average is the one the run met
    rng = np.random.default_rng(args.seed)
    blob, decode, x = setup_bitsback(rng) if args.codec == "bitsback" else setup_lossy(rng)
    counts: dict[str, int] = {}
    failures: list[str] = []
    worst, t0 = 0.0, time.perf_counter()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for case in range(args.cases):
        data, kind = mutate(blob, rng)
        t = time.perf_counter()
        try:
            y = decode(data)
            outcome = ("decoded-identical" if np.array_equal(y, x) else
                       "forged-decoded-other" if args.codec == "lossy" and kind.endswith("+reseal") else "WRONG-DATA")
        except (CorruptFileError, WrongModelError) as e:
            outcome = type(e).__name__
        except Exception as e:  # noqa: BLE001 - a fuzz failure to report
            outcome = f"CRASH {type(e).__name__}"
            failures.append(f"case {case} ({kind}): {type(e).__name__}: {e}")
        worst = max(worst, time.perf_counter() - t)
        if outcome == "WRONG-DATA":
            failures.append(f"case {case} ({kind}): decoded wrong data silently")
        counts[outcome] = counts.get(outcome, 0) + 1
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    doc = {"codec": args.codec, "cases": args.cases, "file_bytes": len(blob), "outcomes": counts, "failures": failures[:50],
           "n_failures": len(failures), "worst_case_seconds": worst, "total_seconds": time.perf_counter() - t0,
           "max_rss_growth_mib": (rss - rss0) / 1024, **prov}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(doc, indent=1))
    print(json.dumps(doc, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
