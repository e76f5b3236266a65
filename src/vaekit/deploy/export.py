"""Export a trained VAE or an anomaly detector as ONNX (or TorchScript) graphs, each checked against PyTorch.

A VAE model folder (or a run folder holding ``model/``) gives two graphs with a dynamic batch dimension:

* ``encoder``: x (batch, D) float32, flattened data in model space [+ c (batch, n_conditions), one-hot]
  → mu, logvar (batch, latent_dim), the posterior q(z|x) = N(mu, exp(logvar));
* ``decoder``: z (batch, latent_dim) [+ c] → params (batch, P, D), the likelihood's parameters θ(z), and
  mean (batch, D) = E[x|z] (the likelihood's mean, in the model's data space).

An anomaly detector folder (``detector.json``) gives one graph, ``score``: x (batch, D) the *encoded* rows and one
noise input eps_i (k, batch, latent_dim) per ensemble member → score (batch,), the ensemble mean the detector's
``decision_function`` returns, and member_scores (batch, n_models). Member i computes, as the detector does,
z_l = μ(x) + σ(x)·ε_l and, for score_type ``nll``, −log (1/k) Σ_l p(x|z_l) p(z_l) / q(z_l|x) (``elbo``,
``recon_prob`` and ``recon_error`` likewise; ``recon_error`` takes no noise). The detector draws ONE fixed set of
ε per member, shared by all rows: ``score_eps.npy`` (n_models, k, latent_dim) holds them, so
``eps_i = broadcast(score_eps[i][:, None, :], (k, N, d))`` reproduces its numbers. The table → encoded rows step
(``TabularSchema.encode``: category look-up, fitted transforms, missing-value masks) is not an ONNX graph; it runs in
Python (``schema.json`` is copied next to the graphs; export.json gives the code).

Every graph is exported in float32 and checked: onnxruntime (or the reloaded TorchScript module) and PyTorch run the
same random inputs at two batch sizes; every difference must be ≤ ``TOLERANCE`` · max(1, |value|) (absolute up
to 1, relative beyond: float32 spacing grows with the value), and the max abs difference is recorded in
``export.json``. ONNX graphs come from PyTorch's TorchScript-based exporter (``dynamo=False``: it needs no package
beyond ``onnx``); TorchScript graphs from ``torch.jit.trace`` (``.pt``, loaded with ``torch.jit.load``).
"""
from __future__ import annotations

import copy
import importlib.util
import io
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from vaekit import __version__
from vaekit.core.checkpoint import read_model_config
from vaekit.core.model import VAE
from vaekit.core.workflows import load, resolve_model_dir
from vaekit.errors import CheckpointError, VaekitError
from vaekit.files import atomic_write_bytes, atomic_write_text, check_target, read_json
from vaekit.jobs.anomaly.detector import member_terms
from vaekit.jobs.anomaly.folder import DETECTOR_FILE, SCHEMA_FILE

FORMAT, VERSION = "vaekit-export", 1
EXPORT_FILE, README_FILE = "export.json", "README.md"
EPS_FILE = "score_eps.npy"
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
OPSET = 17
TOLERANCE = 1e-4  # max |exported − PyTorch| / max(1, |PyTorch|) in float32
TRACE_BATCH = 4
CHECK_BATCHES = (1, 37)
LOG_2PI = math.log(2 * math.pi)


# --- the graphs ---------------------------------------------------------------------------------------------------
class EncoderGraph(nn.Module):
    """x (N, D) [, c (N, n_conditions)] → (mu, logvar), each (N, latent_dim)."""

    def __init__(self, model: VAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, *c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode(x, c[0] if c else None)


class DecoderGraph(nn.Module):
    """z (N, latent_dim) [, c] → (params (N, P, D), mean E[x|z] (N, D))."""

    def __init__(self, model: VAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor, *c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        params = self.model.decode(z, c[0] if c else None)
        return params, self.model.likelihood.mean(params)


def member_score(model: VAE, x: torch.Tensor, eps: torch.Tensor | None, score_type: str) -> torch.Tensor:
    """One member's per-row score (N,): the detector's own kernel (``member_terms``) with ε (k, N, noise_dim) given."""
    return member_terms(model, x, eps, score_type)[0]


class ScoreGraph(nn.Module):
    """x (N, D), eps_0 … eps_{M−1} (k, N, d) → (score (N,) = mean over members, member_scores (N, M))."""

    def __init__(self, members: Sequence[VAE], score_type: str) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.score_type = score_type

    def forward(self, x: torch.Tensor, *eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.score_type == "recon_error":
            per = [member_score(m, x, None, self.score_type) for m in self.members]
        else:
            per = [member_score(m, x, e, self.score_type) for m, e in zip(self.members, eps)]
        scores = torch.stack(per, -1)
        return scores.mean(-1), scores


@dataclass
class Graph:
    """One graph to export: the module, its named inputs/outputs (shapes with "batch"), a random-input maker."""

    name: str
    module: nn.Module
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    make_inputs: Callable[[int, torch.Generator], tuple[torch.Tensor, ...]]
    check: dict[str, Any] = field(default_factory=dict)


def _spec(name: str, shape: Sequence[Any], doc: str, dtype: str = "float32") -> dict[str, Any]:
    return {"name": name, "shape": list(shape), "dtype": dtype, "doc": doc}


def _fp32(model: VAE) -> VAE:
    return copy.deepcopy(model).float().eval().requires_grad_(False)


@torch.no_grad()
def _data(model: VAE, n: int, g: torch.Generator, c: torch.Tensor | None) -> torch.Tensor:
    """n valid rows in model space: x ~ p(x|z), z ~ N(0, I) (so every likelihood gets data it accepts)."""
    z = torch.randn(n, model.config.latent_dim, generator=g)
    return model.likelihood.sample(model.decode(z, c), g).float().reshape(n, -1)


def _onehot(n: int, k: int, g: torch.Generator) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.randint(0, k, (n,), generator=g), k).float()


def vae_graphs(model: VAE) -> list[Graph]:
    """The encoder and decoder graphs of a VAE (float32 copies)."""
    m = _fp32(model)
    cfg = m.config
    d, D, nc, P = cfg.latent_dim, cfg.data_dim, cfg.n_conditions, m.decoder.n_params
    cond = [_spec("c", ["batch", nc], "one-hot condition (class label)")] if nc else []

    def enc_inputs(n: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
        c = _onehot(n, nc, g) if nc else None
        x = _data(m, n, g, c)
        return (x,) if c is None else (x, c)

    def dec_inputs(n: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
        z = torch.randn(n, d, generator=g)
        return (z,) if not nc else (z, _onehot(n, nc, g))

    return [
        Graph("encoder", EncoderGraph(m),
              [_spec("x", ["batch", D], f"flattened data in model space ({m.likelihood.name} likelihood)"), *cond],
              [_spec("mu", ["batch", d], "posterior mean"), _spec("logvar", ["batch", d], "posterior log-variance")],
              enc_inputs),
        Graph("decoder", DecoderGraph(m),
              [_spec("z", ["batch", d], "latent code"), *cond],
              [_spec("params", ["batch", P, m.decoder.data_dim], f"{m.likelihood.name} parameters θ(z)"),
               _spec("mean", ["batch", D], "E[x|z], the likelihood's mean in data space")],
              dec_inputs),
    ]


def score_graph(det: Any) -> Graph:
    """The score graph of a fitted anomaly detector (all members, float32)."""
    members = [_fp32(m) for m in det.models_]
    m0 = members[0]
    d, D, k, M = m0.noise_dim, m0.config.data_dim, int(det.k), len(members)
    sampled = det.score_type != "recon_error"
    eps_specs = [_spec(f"eps_{i}", [k, "batch", d], f"N(0, I) noise of member {i}; the detector's own: "
                       f"{EPS_FILE}[{i}][:, None, :] broadcast over the batch") for i in range(M)] if sampled else []

    def inputs(n: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
        x = _data(m0, n, g, None)
        return (x, *(torch.randn(k, n, d, generator=g) for _ in range(M))) if sampled else (x,)

    return Graph("score", ScoreGraph(members, det.score_type),
                 [_spec("x", ["batch", D], "encoded rows (TabularSchema.encode for mixed tables), float32"),
                  *eps_specs],
                 [_spec("score", ["batch"], f"anomaly score ({det.score_type}), mean over the {M} members; higher = "
                        "more abnormal"),
                  _spec("member_scores", ["batch", M], "each member's score")],
                 inputs)


# --- serialising and checking -------------------------------------------------------------------------------------
def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200] if text else ''}"


def _to_onnx(graph: Graph, example: tuple[torch.Tensor, ...]) -> bytes:
    buf = io.BytesIO()
    dyn = {t["name"]: {i: "batch" for i, s in enumerate(t["shape"]) if s == "batch"}
           for t in graph.inputs + graph.outputs}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph.module, example, buf, dynamo=False, opset_version=OPSET,
                          input_names=[t["name"] for t in graph.inputs],
                          output_names=[t["name"] for t in graph.outputs], dynamic_axes=dyn,
                          do_constant_folding=True)
    raw = buf.getvalue()
    import onnx

    onnx.checker.check_model(onnx.load_model_from_string(raw))
    return raw


def _to_torchscript(graph: Graph, example: tuple[torch.Tensor, ...]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(graph.module, example, check_trace=False)
        torch.jit.save(traced, buf)
    return buf.getvalue()


def onnx_session(raw: bytes | str | Path, threads: int = 1) -> Any:
    """An onnxruntime CPU session for a graph (bytes or a path), ``threads`` intra-op threads."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads, so.log_severity_level = threads, 1, 3
    return ort.InferenceSession(raw if isinstance(raw, bytes) else str(raw), so, providers=["CPUExecutionProvider"])


def runner(fmt: str, raw: bytes, graph: Graph, threads: int = 1) -> Callable[[tuple[torch.Tensor, ...]],
                                                                             list[np.ndarray]]:
    """A function running the exported graph on PyTorch inputs → outputs as NumPy arrays."""
    names = [t["name"] for t in graph.inputs]
    if fmt == "onnx":
        sess = onnx_session(raw, threads)
        return lambda xs: sess.run(None, {n: x.numpy() for n, x in zip(names, xs)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mod = torch.jit.load(io.BytesIO(raw))

    def run(xs: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
        with torch.no_grad():
            out = mod(*xs)
        return [o.numpy() for o in (out if isinstance(out, (tuple, list)) else (out,))]

    return run


@torch.no_grad()
def reference(graph: Graph, xs: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    out = graph.module(*xs)
    return [o.numpy() for o in (out if isinstance(out, (tuple, list)) else (out,))]


def check(fmt: str, raw: bytes, graph: Graph, batches: Sequence[int] = CHECK_BATCHES, seed: int = 0) -> dict[str, Any]:
    """Run the exported graph and PyTorch on random inputs of each batch size → max abs (and scaled) differences.

    The export passes when every |exported − PyTorch| ≤ TOLERANCE · max(1, |PyTorch|): absolute for values up to 1,
    relative beyond (a float32 score of 200 has a spacing of 1.5e-5, and sums of hundreds of terms in another order
    differ by several of those)."""
    run = runner(fmt, raw, graph)
    g = torch.Generator().manual_seed(seed)
    per = {t["name"]: 0.0 for t in graph.outputs}
    scaled = 0.0
    for n in batches:
        xs = graph.make_inputs(n, g)
        got, want = run(xs), reference(graph, xs)
        for spec, a, b in zip(graph.outputs, got, want):
            if a.shape != b.shape:
                raise VaekitError(f"export check: the {graph.name} graph gave {spec['name']} of shape {a.shape} at "
                                  f"batch size {n}, PyTorch {b.shape}")
            if not a.size:
                continue
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            diff[~np.isfinite(diff) & (a != b)] = math.inf  # NaN/inf on one side only
            diff[a == b] = 0.0
            per[spec["name"]] = max(per[spec["name"]], float(diff.max()))
            scaled = max(scaled, float((diff / np.maximum(1.0, np.abs(b.astype(np.float64)))).max()))
    runtime = f"onnxruntime {_version('onnxruntime')}" if fmt == "onnx" else f"torch.jit {torch.__version__}"
    return {"batch_sizes": list(batches), "max_abs_diff": max(per.values()), "max_scaled_diff": scaled,
            "per_output": per, "runtime": runtime, "versus": f"PyTorch {torch.__version__} eager, float32",
            "passes_if": f"|exported - PyTorch| <= {TOLERANCE:g} * max(1, |PyTorch|)", "tolerance": TOLERANCE}


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "not installed"


def installed(pkg: str) -> bool:
    return importlib.util.find_spec(pkg) is not None


def require(fmt: str) -> None:
    """A one-line VaekitError unless the packages the format needs are installed."""
    if fmt not in FORMATS:
        raise VaekitError(f"--format must be one of {list(FORMATS)}, got {fmt!r}")
    if fmt == "onnx":
        missing = [p for p in ("onnx", "onnxruntime") if not installed(p)]
        if missing:
            raise VaekitError(f"--format onnx needs {' and '.join(missing)}: pip install 'vaekit[onnx]'")


def serialise(fmt: str, graph: Graph, source: Path) -> bytes:
    example = graph.make_inputs(TRACE_BATCH, torch.Generator().manual_seed(12345))
    try:
        return _to_onnx(graph, example) if fmt == "onnx" else _to_torchscript(graph, example)
    except VaekitError:
        raise
    except Exception as e:  # noqa: BLE001 -- an operator the exporter cannot express, a tracing failure
        raise VaekitError(f"{source}: the {graph.name} graph of this model cannot be exported to {fmt} "
                          f"({_first_line(e)})") from None


# --- the folders --------------------------------------------------------------------------------------------------
def _open(path: Path) -> tuple[str, Any, Path]:
    """("vae", VAE, model folder) or ("anomaly_detector", detector, folder); a one-line error otherwise."""
    if not path.exists():
        raise CheckpointError(f"{path}: not found")
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a model folder (expected a folder with config.json or detector.json)")
    if (path / DETECTOR_FILE).is_file():
        from vaekit.jobs.anomaly.detector import VAEAnomalyDetector

        return "anomaly_detector", VAEAnomalyDetector.load(path).set_params(device="cpu"), path
    try:
        folder = resolve_model_dir(path)
    except CheckpointError:
        raise CheckpointError(f"{path}: not a vaekit model or anomaly detector folder "
                              "(no config.json, model/config.json or detector.json)") from None
    return "vae", load(folder)[0], folder


def _model_facts(model: VAE) -> dict[str, Any]:
    cfg = model.config
    return {"likelihood": cfg.likelihood, "latent_dim": cfg.latent_dim, "input_shape": list(cfg.input_shape),
            "data_dim": cfg.data_dim, "n_conditions": cfg.n_conditions, "arch": cfg.arch, "prior": cfg.prior,
            "decoder_params": model.decoder.n_params}


def _preprocess_vae(model: VAE) -> dict[str, Any]:
    doc = (type(model.likelihood).__doc__ or "").strip().splitlines()
    return {"summary": "x = the likelihood's prepare() of the raw examples, flattened to (N, D) float32 "
                       f"({model.likelihood.name}: {doc[0] if doc else ''})",
            "python": "from vaekit.core.preprocess import prepare\nfrom vaekit.core.workflows import load\n"
                      "model, _ = load(MODEL_DIR)\nx = prepare(raw, model.likelihood, 'data')[0].numpy()"}


def _preprocess_detector(det: Any) -> dict[str, Any]:
    if det.schema_ is not None:
        return {"summary": "x = TabularSchema.encode of the table's columns (category look-up, fitted transforms, "
                           "one observed-mask bit per column), float32; not expressible as an ONNX graph, so it runs "
                           f"in Python from {SCHEMA_FILE}",
                "python": "from vaekit.data.tabular import TabularSchema\n"
                          f"schema = TabularSchema.load(EXPORT_DIR / '{SCHEMA_FILE}')\n"
                          "rows = table[schema.names] if hasattr(table, 'columns') else table  # or an array, "
                          "columns in order\n"
                          f"x = schema.encode(rows, 'X', unknown={det.unknown_category!r}).astype('float32')"}
    return {"summary": f"x = the rows as float32 (likelihood {det.likelihood})",
            "python": "x = np.asarray(table, dtype=np.float32)"}


def export(path: str | Path, out: str | Path, fmt: str = "onnx", overwrite: bool = False,
           batches: Sequence[int] = CHECK_BATCHES) -> dict[str, Any]:
    """Export the model or detector folder ``path`` into ``out`` (graphs + export.json) → the export.json document."""
    require(fmt)
    path, out = Path(path), Path(out)
    replaced = check_out(out, overwrite)
    kind, obj, folder = _open(path)
    doc: dict[str, Any] = {"format": FORMAT, "version": VERSION, "kind": kind, "graph_format": fmt,
                           "source": str(path), "vaekit_version": __version__, "torch_version": torch.__version__}
    if fmt == "onnx":
        doc.update(onnx_opset=OPSET, onnx_version=_version("onnx"), onnxruntime_version=_version("onnxruntime"))
    extra_files: dict[str, bytes] = {}
    if kind == "vae":
        graphs = vae_graphs(obj)
        doc.update(_model_facts(obj))
        doc["weights_blake2b"] = read_model_config(folder)[1].get("weights_blake2b")
        doc["preprocess"] = _preprocess_vae(obj)
    else:
        det = obj
        graphs = [score_graph(det)]
        members = [str(m) for m in read_json(path / DETECTOR_FILE, "anomaly detector")["members"]]
        doc.update(_model_facts(det.models_[0]))
        doc.update(score_type=det.score_type, k=int(det.k), n_models=len(det.models_), threshold=det.threshold_,
                   columns=list(det.columns_), input=det._input,
                   weights_blake2b={m: read_model_config(path / m)[1].get("weights_blake2b") for m in members},
                   preprocess=_preprocess_detector(det))
        if det.score_type != "recon_error":
            eps = np.stack([det._eps(i).numpy() for i in range(len(det.models_))]).astype(np.float32)
            buf = io.BytesIO()
            np.save(buf, eps, allow_pickle=False)
            extra_files[EPS_FILE] = buf.getvalue()
            doc["eps_file"] = EPS_FILE
        if det.schema_ is not None:
            extra_files[SCHEMA_FILE] = (path / SCHEMA_FILE).read_bytes()
            doc["schema_file"] = SCHEMA_FILE
    raws: dict[str, bytes] = {}
    for graph in graphs:
        raw = serialise(fmt, graph, path)
        graph.check = check(fmt, raw, graph, batches)
        if not graph.check["max_scaled_diff"] <= TOLERANCE:
            raise VaekitError(f"{path}: the exported {graph.name} graph differs from PyTorch by "
                              f"{graph.check['max_abs_diff']:.3g} (more than {TOLERANCE:g} · max(1, |value|)); "
                              "not written")
        raws[graph.name + FORMATS[fmt]] = raw
    if kind == "anomaly_detector":
        doc["detector_check"] = detector_check(fmt, raws["score" + FORMATS[fmt]], graphs[0], obj)
    doc["graphs"] = {g.name: {"file": g.name + FORMATS[fmt], "inputs": g.inputs, "outputs": g.outputs,
                              "check": g.check} for g in graphs}
    for p in [*replaced, *(out / n for n in (*raws, *extra_files, README_FILE, EXPORT_FILE))]:
        check_target(p)  # an input of this command (--out inside the model folder): refused before anything changes
    out.mkdir(parents=True, exist_ok=True)
    for p in replaced:  # the previous export's files: none of them is left to mix with the new one
        p.unlink(missing_ok=True)
    for name, raw in {**raws, **extra_files}.items():
        atomic_write_bytes(out / name, raw)
    atomic_write_text(out / README_FILE, readme(doc))
    atomic_write_text(out / EXPORT_FILE, json.dumps(doc, indent=2))  # last: it marks a complete export
    return doc


def check_out(out: Path, overwrite: bool) -> list[Path]:
    """Refuse (one line) to write into a folder holding anything, unless ``overwrite``; → the files of a previous
    export there (export.json first) to delete before the new one is written. Files the export did not write are
    left alone even then (same-named ones are written over)."""
    if not out.exists():
        return []
    if not out.is_dir():
        raise VaekitError(f"{out}: is a file; --out names the folder to write the export into")
    names = sorted(p.name for p in out.iterdir() if p.name not in (".DS_Store", "Thumbs.db"))
    ours = (out / EXPORT_FILE).is_file() and _is_export(out / EXPORT_FILE)
    if names and not overwrite:
        if ours:
            raise VaekitError(f"{out}: already holds an export (export.json, from 'vaekit export'); pass --overwrite "
                              "to write over it, or choose another --out")
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        raise VaekitError(f"{out}: already holds files ({', '.join(names[:3])}{more}); pass --overwrite to write "
                          "over them, or choose another --out")
    if not ours:
        return []
    written = [f"{g}{ext}" for g in ("encoder", "decoder", "score") for ext in FORMATS.values()]
    return [out / EXPORT_FILE, *(out / n for n in (*written, EPS_FILE, SCHEMA_FILE, README_FILE) if (out / n).is_file())]


def _is_export(path: Path) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


@torch.no_grad()
def detector_check(fmt: str, raw: bytes, graph: Graph, det: Any, n: int = 64, seed: int = 1) -> dict[str, Any]:
    """The exported score graph (float32, the detector's own ε) against ``decision_function`` (float64)."""
    x = graph.make_inputs(n, torch.Generator().manual_seed(seed))[0]
    want = det._score_encoded(x.double())[0]
    k = int(det.k)
    eps = [] if det.score_type == "recon_error" else \
        [det._eps(i).float()[:, None, :].expand(k, n, -1).contiguous() for i in range(len(det.models_))]
    got = runner(fmt, raw, graph)((x, *eps))[0].astype(np.float64)
    diff = np.abs(got - want)
    return {"rows": n, "max_abs_diff": float(diff.max()),
            "max_rel_diff": float((diff / np.maximum(1.0, np.abs(want))).max()),
            "versus": "VAEAnomalyDetector.decision_function (float64) on the same encoded rows, eps from "
                      f"{EPS_FILE}"}


def _run_lines(fmt: str, outs: str, graph: str, feeds: str) -> str:
    """One line of Python running an exported graph on a dict of NumPy feeds."""
    if fmt == "onnx":
        return f"{outs} = {graph}.run(None, {feeds})"
    return f"{outs} = (t.detach().numpy() for t in {graph}(*map(torch.from_numpy, ({feeds}).values())))"


def readme(doc: dict[str, Any]) -> str:
    """A short README for the export folder: the graphs, their inputs and outputs, and how to run them."""
    fmt = doc["graph_format"]
    lines = [f"# vaekit export ({doc['kind']}, {fmt})", "",
             (f"From `{doc['source']}`, vaekit {doc['vaekit_version']}; every graph float32 with a dynamic batch "
              "dimension; details in export.json."), ""]
    for g in doc["graphs"].values():
        ins = ", ".join(f"{t['name']} {tuple(t['shape'])}" for t in g["inputs"])
        outs = ", ".join(f"{t['name']} {tuple(t['shape'])}" for t in g["outputs"])
        lines.append(f"* `{g['file']}`: {ins} → {outs}; max |exported − PyTorch| = {g['check']['max_abs_diff']:.2e}")
    lines += ["", "Input preparation (Python): " + doc["preprocess"]["summary"], "", "```python",
              doc["preprocess"]["python"], "```", ""]
    opener = "ort.InferenceSession" if fmt == "onnx" else "torch.jit.load"
    code = ["import numpy as np, onnxruntime as ort" if fmt == "onnx" else "import numpy as np, torch"]
    if doc["kind"] == "anomaly_detector":
        lines.append(f"Score (higher = more abnormal; label 1 where score > threshold {doc['threshold']:.6g}):")
        code += [f"score_graph = {opener}({doc['graphs']['score']['file']!r})", f"n, k = len(x), {doc['k']}"]
        if doc.get("eps_file"):
            code += [f"eps = np.load({doc['eps_file']!r})  # the detector's fixed draws (n_models, k, d)",
                     ("feeds = {'x': x, **{f'eps_{i}': np.ascontiguousarray(np.broadcast_to(e[:, None], "
                      "(k, n, e.shape[-1]))) for i, e in enumerate(eps)}}")]
        else:
            code.append("feeds = {'x': x}")
        code.append(_run_lines(fmt, "score, member_scores", "score_graph", "feeds"))
    else:
        cond = ", 'c': c" if doc["n_conditions"] else ""
        lines.append("Encode and decode (c: one-hot labels, float32):" if cond else "Encode and decode:")
        code += [f"encoder = {opener}({doc['graphs']['encoder']['file']!r})",
                 f"decoder = {opener}({doc['graphs']['decoder']['file']!r})",
                 _run_lines(fmt, "mu, logvar", "encoder", "{'x': x" + cond + "}"),
                 _run_lines(fmt, "params, mean", "decoder", "{'z': mu" + cond + "}")]
    lines += ["", "```python", *code, "```"]
    return "\n".join(lines) + "\n"
