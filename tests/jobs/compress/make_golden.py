"""Regenerate the golden bits-back files of tests/jobs/compress/test_golden.py (and the small trained models they use).

    python tests/jobs/compress/make_golden.py              # refuses to replace existing golden files
    python tests/jobs/compress/make_golden.py --overwrite  # after a deliberate change of the coder's arithmetic
    python tests/jobs/compress/make_golden.py --overwrite --keep-models   # re-encode only, with the committed models
    python tests/jobs/compress/make_golden.py --missing    # add new entries; the existing files must re-encode equal

Models (trained here on ../shared/data, one thread, ~1–2 min each; committed as test data):
  mnist8 — 8-bit MNIST, discretized logistic, MLP 784-64-16 (elu);  bmnist — binarized MNIST, Bernoulli, 784-64-16 (tanh);
  mnist8conv — 8-bit MNIST, discretized logistic, conv 8-16 channels, fc 64, z 16 (elu);
  bmnist2 — binarized MNIST, Bernoulli, a 2-layer ladder VAE (784-64, z 16 per layer, tanh);
  cat5 — an untrained 16-dimensional 5-category model (seed 0).
Files: mnist8_100.vkz (the first 100 MNIST test images), mnist8conv_100.vkz (the same images, conv model),
bmnist_200.vkz / bmnist2_200.vkz (the first 200 binarized test images), cat5_40.vkz (40 synthetic rows), and manifest.json with each file's SHA-256, the SHA-256 of the items it holds,
its coding settings, and the digests of the fixed-point tables.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
SHARED = HERE.parents[3] / "shared" / "data"  # tests/jobs/compress → the repo → ../shared

# name → model, data source (file, key, count) or None (synthetic), latent bits, lanes
FILES = {
    "mnist8_100": ("mnist8", ("mnist.npz", "x_test", 100), 12, 32),
    "mnist8conv_100": ("mnist8conv", ("mnist.npz", "x_test", 100), 12, 32),
    "bmnist_200": ("bmnist", ("binarized_mnist.npz", "test", 200), 10, 16),
    "cat5_40": ("cat5", None, 8, 4),
    "bmnist2_200": ("bmnist2", ("binarized_mnist.npz", "test", 200), 10, 16),
}
TRAIN = {
    "mnist8": ["--data", "mnist.npz", "--likelihood", "logistic", "--activation", "elu"],
    "bmnist": ["--data", "binarized_mnist.npz", "--likelihood", "bernoulli", "--activation", "tanh"],
    "mnist8conv": ["--data", "mnist.npz", "--likelihood", "logistic", "--activation", "elu", "--arch", "conv",
                   "--channels", "8,16"],
    "bmnist2": ["--data", "binarized_mnist.npz", "--likelihood", "bernoulli", "--activation", "tanh",
                "--stochastic-layers", "2"],
}


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def items(source: tuple[str, str, int] | None) -> np.ndarray:
    if source is None:
        return np.random.default_rng(0).integers(0, 5, (40, 16)).astype(np.uint8)
    name, key, n = source
    return np.load(SHARED / name)[key][:n].reshape(n, -1).astype(np.uint8)


def train(name: str, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        args = [a if not a.endswith(".npz") else str(SHARED / a) for a in TRAIN[name]]
        cmd = [sys.executable, "-m", "vaekit", "train", *args, "--hidden", "64", "--latent-dim", "16",
               "--objective", "elbo", "--epochs", "20", "--time-limit", "2", "--seed", "0", "--threads", "1",
               "--precision", "fp32", "--no-progress", "--out", tmp + "/run"]
        subprocess.run(cmd, check=True)
        shutil.copytree(Path(tmp) / "run" / "model", out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--overwrite", action="store_true", help="replace the existing golden files")
    ap.add_argument("--keep-models", action="store_true", help="re-encode with the committed models")
    ap.add_argument("--missing", action="store_true", help="train the models that are missing, add their files, "
                    "and check that every existing file re-encodes to its committed bytes")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from vaekit.core.checkpoint import save_model
    from vaekit.core.config import ModelConfig
    from vaekit.core.model import VAE
    from vaekit.jobs.compress.fixedpoint import table_digests

    if args.missing:
        return add_missing()
    if (GOLDEN / "manifest.json").exists() and not args.overwrite:
        print(f"{GOLDEN} already holds golden files; pass --overwrite to replace them", file=sys.stderr)
        return 2
    GOLDEN.mkdir(parents=True, exist_ok=True)
    if not args.keep_models:
        for name in TRAIN:
            shutil.rmtree(GOLDEN / name, ignore_errors=True)
            train(name, GOLDEN / name)
        torch.manual_seed(0)
        shutil.rmtree(GOLDEN / "cat5", ignore_errors=True)
        save_model(VAE(ModelConfig(input_shape=(16,), latent_dim=3, hidden=(16,), likelihood="categorical",
                                   n_categories=5)).eval(), GOLDEN / "cat5")
    manifest: dict = {"tables": table_digests(), "files": {}}
    for fname in FILES:
        manifest["files"][fname] = encode(fname)
    (GOLDEN / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return 0


def encode(fname: str) -> dict:
    """Code FILES[fname] with its committed model, write the .vkz, return its manifest entry."""
    from vaekit.core.checkpoint import load_model
    from vaekit.jobs.compress.bitsback import BitsBackCodec

    model_name, source, bits, lanes = FILES[fname]
    x = items(source)
    model, _ = load_model(GOLDEN / model_name)
    blob = BitsBackCodec(model, latent_bits=bits, lanes=lanes, groups=4).encode(x)
    (GOLDEN / f"{fname}.vkz").write_bytes(blob)
    print(f"{fname}: {len(x)} items → {len(blob)} bytes ({8 * len(blob) / x.size:.4f} bits/dim)")
    return {"model": model_name, "latent_bits": bits, "lanes": lanes, "groups": 4, "n": len(x),
            "source": list(source) if source else "numpy default_rng(0) 0..4, 40×16",
            "items_sha256": sha256(x.tobytes()), "vkz_sha256": sha256(blob), "bytes": len(blob)}


def add_missing() -> int:
    """Train the missing models, add the missing files; refuse if an existing file would change."""
    manifest = json.loads((GOLDEN / "manifest.json").read_text())
    for fname, (model_name, _, _, _) in FILES.items():
        if fname in manifest["files"]:
            old = (GOLDEN / f"{fname}.vkz").read_bytes()
            if encode(fname)["vkz_sha256"] != manifest["files"][fname]["vkz_sha256"]:
                (GOLDEN / f"{fname}.vkz").write_bytes(old)
                print(f"{fname} re-encodes to other bytes: the coder's arithmetic changed", file=sys.stderr)
                return 1
            continue
        if not (GOLDEN / model_name).exists():
            train(model_name, GOLDEN / model_name)
        manifest["files"][fname] = encode(fname)
    (GOLDEN / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
