"""Which vaekit folder a MODEL_DIR is, loading it with its job's own loader, and the endpoints it gets.

=================  ======================================  ===========================================================
kind               recognised by                           endpoints
=================  ======================================  ===========================================================
vae                config.json (or model/config.json) of   encode, decode, sample, reconstruct; compress, decompress
                   format vaekit-model (``vaekit train``)  (bits-back) when its likelihood is discrete
anomaly_detector   detector.json (``vaekit anomaly fit``)  score
imputer            imputer.json (``save_imputer``)         impute
generator          generator.json (``vaekit generate fit``) generate
codec              config.json of format vaekit-codec      compress, decompress (lossy images)
=================  ======================================  ===========================================================
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaekit.deploy.serve.ops import Op
from vaekit.errors import CheckpointError, VaekitError
from vaekit.files import folder_artifacts

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
KINDS = ("vae", "anomaly_detector", "imputer", "generator", "codec")


@dataclass
class Artifact:
    """One loaded folder: its URL name, kind, the loaded object, facts for /models, and its ops."""

    name: str
    kind: str
    obj: Any
    facts: dict[str, Any]
    ops: list[Op] = field(default_factory=list)
    n_params: int = 0


def parse_spec(spec: str) -> tuple[str, Path]:
    """``DIR`` or ``NAME=DIR`` → (URL name, folder); the name defaults to the folder's own name."""
    name, eq, rest = spec.partition("=")
    if eq and NAME.fullmatch(name) and rest:
        return name, Path(rest)
    path = Path(spec)
    base = re.sub(r"[^A-Za-z0-9_.-]", "-", path.resolve().name or "model").lstrip("-_.") or "model"
    if base == "model" and path.resolve().parent.name:  # a run's model/ folder: name it after the run
        base = re.sub(r"[^A-Za-z0-9_.-]", "-", path.resolve().parent.name).lstrip("-_.") or "model"
    return base[:64], path


def detect(path: Path) -> str:
    """The kind of the vaekit folder at ``path`` (see the module docstring); a one-line CheckpointError otherwise."""
    if not path.exists():
        raise CheckpointError(f"{path}: not found")
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a folder (vaekit serve takes model, run, detector, imputer, generator "
                              "or codec folders)")
    found = folder_artifacts(path)
    if "detector" in found:
        return "anomaly_detector"
    if "generator" in found:
        return "generator"
    if (path / "imputer.json").is_file():
        return "imputer"
    if "codec" in found:
        return "codec"
    if "model" in found or (path / "model" / "config.json").is_file():
        return "vae"
    raise CheckpointError(f"{path}: not a vaekit folder vaekit serve can load (no config.json, model/config.json, "
                          "detector.json, imputer.json or generator.json)")


def _params(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def load_artifact(name: str, path: Path, max_rows: int, device: str = "cpu", n_threads: int | None = None
                  ) -> Artifact:
    """Load the folder with its job's loader → an :class:`Artifact` with its ops."""
    kind = detect(path)
    prefix = re.sub(r"[^A-Za-z0-9]", "_", name).title().replace("_", "")
    if kind == "vae":
        from vaekit.core.workflows import load, resolve_model_dir
        from vaekit.deploy.serve.vae_ops import vae_ops
        from vaekit.runtime import resolve_device

        folder = resolve_model_dir(path)
        model, extra = load(folder)
        model = model.eval().requires_grad_(False).to(resolve_device(device))
        cfg = model.config
        facts = {"likelihood": cfg.likelihood, "input_shape": list(cfg.input_shape), "data_dim": cfg.data_dim,
                 "latent_dim": cfg.latent_dim, "n_conditions": cfg.n_conditions, "arch": cfg.arch, "prior": cfg.prior,
                 "data_dtype": extra.get("data", {}).get("dtype"),
                 "bits_back": model.likelihood.coding is not None and not cfg.n_conditions}
        return Artifact(name, kind, model, facts, vae_ops(prefix, model, extra, max_rows, folder), _params(model))
    if kind == "anomaly_detector":
        from vaekit.deploy.serve.table_ops import detector_ops
        from vaekit.jobs.anomaly.files import load_detector

        det = load_detector(path).set_params(device=device, n_threads=n_threads)
        det._check_params()
        facts = {"columns": list(det.columns_), "score_type": det.score_type, "k": int(det.k),
                 "n_models": len(det.models_), "threshold": float(det.threshold_), "input": det._input}
        return Artifact(name, kind, det, facts, detector_ops(prefix, det, max_rows), _params(det.models_[0]))
    if kind == "imputer":
        from vaekit.deploy.serve.table_ops import imputer_ops
        from vaekit.jobs.impute.folder import load_imputer

        imp = load_imputer(path).set_params(device=device, n_threads=n_threads)
        facts = {"columns": [[c.name, c.kind] for c in imp.schema_.columns], "n_samples": int(imp.n_samples),
                 "input": imp._input}
        return Artifact(name, kind, imp, facts, imputer_ops(prefix, imp, max_rows), _params(imp.model_))
    if kind == "generator":
        from vaekit.deploy.serve.table_ops import generator_ops
        from vaekit.jobs.generate.files import load_generator

        gen = load_generator(path).set_params(device=device, n_threads=n_threads)
        gen._check_params()
        facts = {"columns": list(gen.columns_), "condition_columns": [] if gen.condition_schema_ is None
                 else list(gen.condition_schema_.names)}
        return Artifact(name, kind, gen, facts, generator_ops(prefix, gen, max_rows), _params(gen.model_))
    from vaekit.deploy.serve.codec_ops import codec_ops
    from vaekit.jobs.compress.lossy import load_codec

    codec = load_codec(path)
    facts = {"channels": codec.cfg.channels, "levels": len(codec.levels), "lambdas": codec.lambdas}
    return Artifact(name, kind, codec, facts, codec_ops(codec), _params(codec))


def load_all(specs: Sequence[str], max_rows: int, device: str = "cpu", n_threads: int | None = None
             ) -> list[Artifact]:
    """Every MODEL_DIR (``DIR`` or ``NAME=DIR``) loaded; two of the same name → one-line VaekitError."""
    if not specs:
        raise VaekitError("give at least one MODEL_DIR to serve")
    seen: dict[str, Path] = {}
    out = []
    for spec in specs:
        name, path = parse_spec(spec)
        if name in seen:
            raise VaekitError(f"two models named {name!r} ({seen[name]} and {path}); name them: NAME=DIR")
        seen[name] = path
        out.append(load_artifact(name, path, max_rows, device, n_threads))
    return out
