"""Fuzz the folder loaders: mutated model folders (``load_model``) and anomaly detector folders
(``VAEAnomalyDetector.load``), loaded in-process.

Each case copies a tiny, valid folder and mutates one file: a JSON document (config.json, detector.json,
schema.json) gets a field of another type, size, NaN/inf, deep nesting, a removed or added key, or raw byte damage;
a safetensors file (weights, training scores) is truncated, bit-flipped, extended or gets an edited header (dtype,
shape, offsets, header length). About half the cases are then re-sealed: every checksum (weights_blake2b,
config_blake2b, files_blake2b) is recomputed over the mutated files, as an attacker can do (the checksums are not
signatures), so the mutation reaches the loaders' validation itself. A case passes when loading succeeds or
raises a documented error (a VaekitError subclass: CheckpointError, DataError …); any other exception, a case over
SECONDS_LIMIT or a peak RSS over RSS_LIMIT_MB is a failure.

    python benchmarks/fuzz_folders.py --cases 3000 --out benchmarks/results/hostile/fuzz_folders.json
"""
from __future__ import annotations

import argparse
import json
import sys
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from vaekit.core.checkpoint import load_model, save_model
from vaekit.core.config import ModelConfig
from vaekit.core.model import VAE
from vaekit.errors import VaekitError
from vaekit.files import atomic_write_text, document_digest, weights_digest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzz_tally import Tally  # noqa: E402

SECONDS_LIMIT = 2.0
RSS_LIMIT_MB = 1500.0
HARD_TIMEOUT_S = 30  # a case still running after this is interrupted (and reported as a failure)

# --- value mutations ---------------------------------------------------------------------------------------------
NAN = object()  # placeholders written as the non-standard JSON literals NaN / Infinity / -Infinity
INF = object()
NINF = object()


class _Deep:
    """A placeholder for ``depth`` nested arrays, written as raw text (json.dumps would recurse)."""

    def __init__(self, depth: int) -> None:
        self.depth = depth


def random_value(rng: np.random.Generator, old: Any) -> Any:
    """A hostile replacement for a JSON value: another type, an extreme size, NaN/inf, nesting."""
    choices: list[Callable[[], Any]] = [
        lambda: None, lambda: True, lambda: False, lambda: "", lambda: "x", lambda: "A" * int(rng.integers(1, 20000)),
        lambda: 0, lambda: -1, lambda: 1, lambda: 2, lambda: 3, lambda: 2**31, lambda: 2**63, lambda: -(2**63),
        lambda: 10**int(rng.integers(6, 40)), lambda: int(rng.integers(-1000, 100000)), lambda: 0.5, lambda: -0.0,
        lambda: 1e308, lambda: -1e308, lambda: 5e-324, lambda: NAN, lambda: INF, lambda: NINF, lambda: [], lambda: {},
        lambda: [1, 2, 3], lambda: {"a": 1}, lambda: [0] * int(rng.integers(1, 5000)),
        lambda: _Deep(int(rng.choice([5, 50, 500, 5000, 50000]))), lambda: [old, old], lambda: {"v": old},
        lambda: "../../etc", lambda: "/etc", lambda: "member_0", lambda: "\u0000",
    ]
    if isinstance(old, (int, float)) and not isinstance(old, bool):
        choices += [lambda: old + 1, lambda: old * -1, lambda: old * 1000, lambda: float(old) + 0.5]
    if isinstance(old, list) and old:
        choices += [lambda: old[:-1], lambda: old + old[-1:], lambda: old[::-1]]
    return choices[int(rng.integers(len(choices)))]()


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path in a parsed JSON document (into objects and the first 8 items of arrays)."""
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:8]):
            out += _paths(v, prefix + (i,))
    return out


def _get(doc: Any, path: tuple) -> Any:
    for k in path:
        doc = doc[k]
    return doc


def _dumps(doc: Any) -> str:
    deep: list[int] = []
    text = json.dumps(_placeholders(doc, deep), indent=1)
    text = text.replace('"__NaN__"', "NaN").replace('"__Inf__"', "Infinity").replace('"__NInf__"', "-Infinity")
    for i, depth in enumerate(deep):
        text = text.replace(f'"__Deep{i}__"', "[" * depth + "0" + "]" * depth)
    return text


def _placeholders(v: Any, deep: list[int], level: int = 0) -> Any:
    if v is NAN:
        return "__NaN__"
    if v is INF:
        return "__Inf__"
    if v is NINF:
        return "__NInf__"
    if isinstance(v, _Deep):
        deep.append(v.depth)
        return f"__Deep{len(deep) - 1}__"
    if level > 200:
        raise ValueError("nested too deeply to write")
    if isinstance(v, dict):
        return {k: _placeholders(x, deep, level + 1) for k, x in v.items()}
    if isinstance(v, list):
        return [_placeholders(x, deep, level + 1) for x in v]
    return v


def mutate_json(raw: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One mutation of a JSON document's bytes → (new bytes, kind)."""
    kind = str(rng.choice(["field", "field", "field", "remove", "add", "bytes", "truncate", "root"]))
    if kind in ("bytes", "truncate"):
        b = bytearray(raw)
        if kind == "truncate":
            return bytes(b[:int(rng.integers(len(b)))]), kind
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(len(b)))] = int(rng.integers(256))
        return bytes(b), kind
    doc = json.loads(raw)
    if kind == "root":
        return _dumps(random_value(rng, doc)).encode(), kind
    paths = _paths(doc)
    path = paths[int(rng.integers(len(paths)))]
    parent, key = _get(doc, path[:-1]), path[-1]
    if kind == "remove" and isinstance(parent, dict):
        del parent[key]
    elif kind == "add":
        target = _get(doc, path) if isinstance(_get(doc, path), dict) else doc
        target[str(rng.choice(["extra", "version", "format", "params", "model", "members", "x"]))] = \
            random_value(rng, None)
    else:
        parent[key] = random_value(rng, parent[key])
        kind = f"field:{'.'.join(map(str, path))[:40]}"
    try:
        return _dumps(doc).encode(), kind
    except (RecursionError, ValueError):
        return raw, kind + "(unchanged)"


def mutate_tensors(raw: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One mutation of a safetensors file → (new bytes, kind)."""
    kind = str(rng.choice(["truncate", "flip", "extend", "header", "header", "header-length"]))
    b = bytearray(raw)
    if kind == "truncate":
        return bytes(b[:int(rng.integers(len(b)))]), kind
    if kind == "flip":
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(len(b)))] ^= 1 << int(rng.integers(8))
        return bytes(b), kind
    if kind == "extend":
        return bytes(b) + rng.integers(0, 256, int(rng.integers(1, 4096)), dtype=np.uint8).tobytes(), kind
    n = int.from_bytes(raw[:8], "little")
    if kind == "header-length":
        new = int(rng.choice([0, 1, n - 1, n + 1, n * 2, len(raw), 2**32, 2**63 - 1]))
        return new.to_bytes(8, "little", signed=False) + raw[8:], kind
    header = json.loads(raw[8:8 + n])
    names = [k for k in header if k != "__metadata__"]
    name = names[int(rng.integers(len(names)))]
    field = str(rng.choice(["dtype", "shape", "data_offsets", "name", "metadata"]))
    if field == "dtype":
        header[name]["dtype"] = str(rng.choice(["F64", "F16", "BF16", "I8", "U8", "I64", "BOOL", "F8_E4M3", "XX"]))
    elif field == "shape":
        header[name]["shape"] = random_value(rng, header[name]["shape"])
    elif field == "data_offsets":
        header[name]["data_offsets"] = random_value(rng, header[name]["data_offsets"])
    elif field == "name":
        header[name + "_x"] = header.pop(name)
    else:
        header["__metadata__"] = random_value(rng, header.get("__metadata__"))
    try:
        text = _dumps(header).encode()
    except (RecursionError, ValueError):
        return raw, "header(unchanged)"
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + raw[8 + n:], f"header:{field}"


# --- resealing: recompute every checksum over the mutated files (what an attacker can do) -------------------------
def _reseal_model(d: Path) -> None:
    try:
        doc = json.loads((d / "config.json").read_bytes())
        if not isinstance(doc, dict):
            return
        if (d / "model.safetensors").is_file():
            doc["weights_blake2b"] = weights_digest((d / "model.safetensors").read_bytes())
        doc["config_blake2b"] = document_digest(doc, "config_blake2b")
        (d / "config.json").write_text(json.dumps(doc))
    except (ValueError, RecursionError, TypeError, OSError):
        pass  # not JSON, NaN, too deep: left as it is (refused before any checksum matters)


def _reseal_detector(d: Path) -> None:
    for m in sorted(d.glob("member_*")):
        _reseal_model(m)
    try:
        doc = json.loads((d / "detector.json").read_bytes())
        if not isinstance(doc, dict):
            return
        files = doc.get("files_blake2b")
        if isinstance(files, dict):
            doc["files_blake2b"] = {n: weights_digest((d / n).read_bytes()) if (d / n).is_file() else v
                                    for n, v in files.items()}
        doc["config_blake2b"] = document_digest(doc, "config_blake2b")
        (d / "detector.json").write_text(json.dumps(doc))
    except (ValueError, RecursionError, TypeError, OSError):
        pass


# --- fixtures and cases ----------------------------------------------------------------------------------------
def build_fixtures(root: Path) -> dict[str, Path]:
    """Tiny model folders (an MLP with a learned-variance Gaussian likelihood; a conditional convolutional
    Bernoulli VAE) and a tiny two-member anomaly detector folder of a mixed table."""
    from vaekit import VAEAnomalyDetector

    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=(12,), latent_dim=3, hidden=(16, 8), likelihood="gaussian_learned")).eval()
    save_model(model, root / "model", extra={"data": {"seed": 0}})
    conv = VAE(ModelConfig(input_shape=(1, 8, 8), latent_dim=2, arch="conv", channels=(4, 8), hidden=(8,),
                           n_conditions=3)).eval()
    save_model(conv, root / "conv")
    df = _table()
    VAEAnomalyDetector(n_models=2, max_steps=5, epochs=2, hidden=(8,), latent_dim=2, k=4,
                       random_state=0).fit(df).save(root / "detector")
    return {"model": root / "model", "conv": root / "conv", "detector": root / "detector"}


def _files(d: Path) -> list[Path]:
    return sorted(p for p in d.rglob("*") if p.is_file())


def make_case(kind: str, fixture: Path, work: Path, rng: np.random.Generator) -> str:
    """Copy ``fixture`` to ``work`` and mutate one of its files (re-sealed about half the time) → a description."""
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(fixture, work)
    target = _files(work)[int(rng.integers(len(_files(work))))]
    raw = target.read_bytes()
    new, how = (mutate_tensors if target.suffix == ".safetensors" else mutate_json)(raw, rng)
    target.write_bytes(new)
    resealed = bool(rng.random() < 0.5)
    if resealed:
        (_reseal_detector if kind == "detector" else _reseal_model)(work)
    return f"{kind} {target.relative_to(work).as_posix()} {how}{' +reseal' if resealed else ''}"


def _table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40), "g": ["x", "y", "z", "x"] * 10})


def load_case(kind: str, d: Path) -> None:
    """Load the folder, then use what loaded (a forged but re-sealed folder must fail at load or work): a model
    reconstructs two rows, a detector scores and labels five."""
    if kind != "detector":
        model, _ = load_model(d)
        x = torch.rand(2, int(np.prod(model.config.input_shape)))
        model.reconstruct(x, torch.zeros(2, dtype=torch.long) if model.config.n_conditions else None)
    else:
        from vaekit import VAEAnomalyDetector

        det = VAEAnomalyDetector.load(d)
        det.decision_function(_table().head(5))
        det.predict(_table().head(5))


class _Timeout(BaseException):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout()


def run(cases: int, seed: int, root: Path) -> dict[str, Any]:
    """Run ``cases`` cases (in turn: MLP model, conv model, detector folder) → the summary document."""
    torch.set_num_threads(1)
    fixtures = build_fixtures(root / "fixtures")
    rng = np.random.default_rng(seed)
    tally = Tally(SECONDS_LIMIT, RSS_LIMIT_MB)
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        for case in range(cases):
            kind = ("model", "conv", "detector")[case % 3]
            what = make_case(kind, fixtures[kind], root / "case", rng)
            t = time.perf_counter()
            signal.alarm(HARD_TIMEOUT_S)
            try:
                load_case(kind, root / "case")
                outcome = "loaded and used"
            except VaekitError as e:
                outcome = type(e).__name__
                if "\n" in str(e):
                    tally.fail(case, what, f"a {outcome} of more than one line: {str(e)[:200]!r}")
            except _Timeout:
                outcome = "TIMEOUT"
                tally.fail(case, what, f"still running after {HARD_TIMEOUT_S} s")
            except Exception as e:  # noqa: BLE001 - a fuzz failure to report
                outcome = f"CRASH {type(e).__name__}"
                tally.fail(case, what, f"{type(e).__name__}: {str(e)[:300]}")
            finally:
                signal.alarm(0)
            tally.record(case, what, f"{kind}: {outcome}", time.perf_counter() - t)
    finally:
        signal.signal(signal.SIGALRM, old)
    return tally.summary("model and anomaly detector folders (load_model, VAEAnomalyDetector.load, then reconstruct / "
                         "decision_function on what loaded)", cases, seed)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/hostile/fuzz_folders.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        doc = run(args.cases, args.seed, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(doc, indent=1))
    print(json.dumps(doc, indent=1))
    return 1 if doc["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
