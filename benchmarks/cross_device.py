"""Benchmark: a bits-back file written on one machine decodes to the same items on another machine's CPU and GPU.

``prepare`` (on the machine that writes): the first N 8-bit MNIST test images coded with the committed golden models
(``tests/jobs/compress/golden``: the 784-64-16 logistic MLP and the conv net), the files and the items kept in DIR.
``check`` (on any other machine): each file decoded on each device, the items compared with the originals, and the
items re-encoded there and compared byte for byte with the file; the coding speed is recorded (MB/s of raw pixels).

    python benchmarks/cross_device.py prepare --dir .devdata/cross --n 1000
    python benchmarks/cross_device.py check --dir .devdata/cross --devices cpu cuda --out cross_device.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import provenance  # noqa: E402

from vaekit.core.checkpoint import load_model  # noqa: E402
from vaekit.files import atomic_write_bytes, atomic_write_text  # noqa: E402
from vaekit.jobs.compress.bitsback import BitsBackCodec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "jobs" / "compress" / "golden"
MNIST = ROOT.parent / "shared" / "data" / "mnist.npz"
MODELS = ("mnist8", "mnist8conv")


def _codec(name: str, device: str) -> BitsBackCodec:
    entry = json.loads((GOLDEN / "manifest.json").read_text())["files"][f"{name}_100"]
    model, _ = load_model(GOLDEN / name)
    return BitsBackCodec(model, latent_bits=entry["latent_bits"], lanes=entry["lanes"], groups=entry["groups"],
                         device=device)


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def prepare(d: Path, n: int, data: Path) -> dict[str, Any]:
    d.mkdir(parents=True, exist_ok=True)
    x = np.load(data)["x_test"][:n].reshape(n, -1).astype(np.uint8)
    np.save(d / "x.npy", x)
    made: dict[str, Any] = {"n": n, "items_sha256": _sha(x.tobytes()), "files": {}, **provenance()}
    for name in MODELS:
        t = time.perf_counter()
        blob = _codec(name, "cpu").encode(x)
        made["files"][name] = {"bytes": len(blob), "sha256": _sha(blob), "encode_s": time.perf_counter() - t,
                               "bits_per_dim": 8 * len(blob) / x.size}
        atomic_write_bytes(d / f"{name}.vkz", blob)
    atomic_write_text(d / "made.json", json.dumps(made, indent=2))
    return made


def check(d: Path, devices: list[str]) -> dict[str, Any]:
    made = json.loads((d / "made.json").read_text())
    x = np.load(d / "x.npy")
    raw_mb = x.size / 1e6
    rows: list[dict[str, Any]] = []
    for name in MODELS:
        blob = (d / f"{name}.vkz").read_bytes()
        for dev in devices:
            codec = _codec(name, dev)
            t = time.perf_counter()
            y = codec.decode(blob)
            dec_s = time.perf_counter() - t
            t = time.perf_counter()
            again = codec.encode(x)
            enc_s = time.perf_counter() - t
            rows.append({"model": name, "device": dev, "decoded_equal": bool(np.array_equal(y, x)),
                         "re_encoded_equal": again == blob, "decode_MB_s": raw_mb / dec_s,
                         "encode_MB_s": raw_mb / enc_s, "bytes": len(blob)})
            print(json.dumps(rows[-1]), flush=True)
    return {"benchmark": "bits-back files decoded and re-encoded on another machine", "written_on": made,
            "rows": rows, "all_equal": all(r["decoded_equal"] and r["re_encoded_equal"] for r in rows),
            "torch_threads": torch.get_num_threads(), **provenance()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("prepare", "check"))
    ap.add_argument("--dir", default=".devdata/cross")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--data", default=str(MNIST))
    ap.add_argument("--devices", nargs="*", default=["cpu"])
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    res = prepare(Path(args.dir), args.n, Path(args.data)) if args.mode == "prepare" else check(Path(args.dir),
                                                                                                args.devices)
    if args.out:
        atomic_write_text(Path(args.out), json.dumps(res, indent=2))
    return 0 if args.mode == "prepare" or res["all_equal"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
