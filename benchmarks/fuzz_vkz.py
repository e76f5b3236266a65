"""Fuzz the .vkz decoders: mutated, truncated, extended and re-sealed (valid checksum) files.

Every case must end in the documented error (CorruptFileError / WrongModelError) or decode to exactly the
original data; anything else (another exception, a hang, a large allocation) is a failure. Re-sealed cases
recompute the checksum after mutating, so they reach the header parser and the bits-back decoder itself.

    python benchmarks/fuzz_vkz.py --cases 100000 --out benchmarks/results/compress/fuzz.json
"""
from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch

from vaekit.compress.bitsback import BitsBackCodec
from vaekit.compress.container import DIGEST_BYTES, _digest
from vaekit.config import ModelConfig
from vaekit.errors import CorruptFileError, WrongModelError
from vaekit.io import atomic_write_text
from vaekit.model import VAE


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/compress/fuzz.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=(16,), latent_dim=3, hidden=(16,))).eval()
    codec = BitsBackCodec(model, latent_bits=8)
    rng = np.random.default_rng(args.seed)
    x = (rng.random((4, 16)) < 0.3).astype(np.uint8)
    blob = codec.encode(x)
    counts: dict[str, int] = {}
    failures: list[str] = []
    worst, t0 = 0.0, time.perf_counter()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for case in range(args.cases):
        data, kind = mutate(blob, rng)
        t = time.perf_counter()
        try:
            y = codec.decode(data)
            outcome = "decoded-identical" if np.array_equal(y, x) else "WRONG-DATA"
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
    doc = {"cases": args.cases, "file_bytes": len(blob), "outcomes": counts, "failures": failures[:50],
           "n_failures": len(failures), "worst_case_seconds": worst, "total_seconds": time.perf_counter() - t0,
           "max_rss_growth_mib": (rss - rss0) / 1024}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(doc, indent=1))
    print(json.dumps(doc, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
