"""The Python API behind the CLI: train / evaluate / sample / reconstruct on files, one function each."""
from __future__ import annotations

import json
import math
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaekit.core.checkpoint import CONFIG_FILE, load_model
from vaekit.core.config import ModelConfig, TrainConfig
from vaekit.core.evaluate import ACTIVE_VARIANCE, count_active_units, evaluate
from vaekit.core.model import VAE
from vaekit.core.preprocess import StreamedData, prepare, prepare_stream
from vaekit.core.trainer import MODEL_DIR, History, Trainer
from vaekit.data import Dataset, infer_image_shape, load_array, load_splits
from vaekit.data.stream import open_rows
from vaekit.errors import CheckpointError, DataError, VaekitError, VaekitWarning
from vaekit.files import (
    atomic_save,
    atomic_write_text,
    check_output_folder,
    read_json,
    retire_artifacts,
)
from vaekit.plots import save_grid
from vaekit.runtime import (
    barrier,
    init_distributed,
    on_main,
    resolve_device,
    resolve_precision,
    resolve_threads,
    seed_everything,
)
from vaekit.runtime import threads as runtime_threads


def resolve_model_dir(path: str | Path) -> Path:
    """Accept a model folder or a training run folder (which holds ``model/``)."""
    path = Path(path)
    if (path / CONFIG_FILE).is_file():
        return path
    if (path / MODEL_DIR / CONFIG_FILE).is_file():
        return path / MODEL_DIR
    raise CheckpointError(f"{path}: no vaekit model here (expected {CONFIG_FILE} or {MODEL_DIR}/{CONFIG_FILE})")


def load(path: str | Path) -> tuple[VAE, dict[str, Any]]:
    """Load a trained model (and the data-preparation facts saved with it) from a model or run folder."""
    return load_model(resolve_model_dir(path))


def _labels(ds: Dataset, n_conditions: int) -> torch.Tensor | None:
    if n_conditions == 0:
        return None
    if ds.y is None:
        raise DataError(f"{ds.source}: this model is conditional but the data has no labels")
    y = np.asarray(ds.y)
    if y.min() < 0 or y.max() >= n_conditions:
        raise DataError(f"{ds.source}: labels must be integers in 0..{n_conditions - 1}")
    return torch.from_numpy(y.astype(np.int64))


def prepare_for_model(model: VAE, extra: dict[str, Any], ds: Dataset) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Validate a dataset against a trained model (shape, range, labels) and map it to model space."""
    d = int(np.prod(ds.x.shape[1:]))
    if d != model.config.data_dim:
        raise DataError(f"{ds.source}: examples have shape {ds.x.shape[1:]} ({d} values), "
                        f"the model expects {model.config.input_shape} ({model.config.data_dim} values)")
    binarize = extra.get("data", {}).get("binarize", "none")
    x, _ = prepare(ds.x, model.likelihood, ds.source, "static" if binarize != "none" else "none",
                   seed=extra.get("data", {}).get("seed", 0))
    return x, _labels(ds, model.config.n_conditions)


def train(data: str | Path, out: str | Path, model_config: ModelConfig | None = None,
          train_config: TrainConfig | None = None, resume: bool = False, progress: bool = True,
          conditional: bool = False, overwrite: bool = False, stream: bool = False) -> tuple[VAE, History]:
    """Fit a VAE on ``data`` (train split; valid split or a 10% carve-out for validation); results in ``out``.

    ``stream``: the training rows stay on disk and are read per batch (``.npy``, CSV, Parquet, image folders;
    :mod:`vaekit.data.stream`), validation on a seeded 10% (at most 10,000 rows) held in memory.

    ``out`` must be missing, empty or (with ``resume``) this run's own folder; anything else (another run, another
    vaekit artifact, files vaekit did not write) needs ``overwrite`` (:func:`vaekit.files.check_output_folder`)."""
    out = Path(out)
    tcfg = train_config or TrainConfig()
    main = init_distributed(tcfg.device).main  # under torchrun: rank 0 checks and writes the files
    replaced = on_main(check_output_folder, out, "train", overwrite, resume)
    run_file = out / "run.json"
    if resume and run_file.is_file():
        saved = read_json(run_file, "run file")
        try:
            mcfg = ModelConfig.from_dict(saved["model"])
            saved_t = TrainConfig.from_dict(saved["train"])
        except (KeyError, TypeError, VaekitError) as e:
            raise CheckpointError(f"{run_file}: not a valid vaekit run file ({e})") from None
        # what may differ on resume: this invocation's time limit, device and threads
        tcfg = replace(saved_t, time_limit_min=tcfg.time_limit_min, device=tcfg.device, num_threads=tcfg.num_threads)
        conditional = mcfg.n_conditions > 0
        stream = stream or bool(saved.get("stream"))  # a streamed run resumes streamed
    if stream:
        return _train_streamed(data, out, mcfg if resume and run_file.is_file() else None, model_config, tcfg,
                               resume, progress, conditional, replaced, main)
    splits = load_splits(data, seed=tcfg.seed)
    tr, va = splits["train"], splits.get("valid")
    if not resume or not run_file.is_file():
        base = model_config or ModelConfig()
        n_cond = 0
        if conditional:
            if tr.y is None:
                raise DataError(f"{tr.source}: --conditional needs labels (y_train / sub-folders)")
            n_cond = int(np.max(tr.y)) + 1
        shape = infer_image_shape(tr.x)  # (C, H, W) for images, (D,) for other vectors
        mcfg = replace(base, input_shape=shape, n_conditions=n_cond)
    seed_everything(tcfg.seed)  # before the model is built: its initial weights come from the seed
    model = VAE(mcfg)
    x_tr, tf = prepare(tr.x, model.likelihood, tr.source, tcfg.binarize, seed=tcfg.seed)
    x_va = None
    if va is not None:
        x_va, _ = prepare(va.x, model.likelihood, va.source, "static" if tcfg.binarize != "none" else "none",
                          seed=tcfg.seed + 7)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        retire_artifacts(replaced)
        atomic_write_text(run_file, json.dumps({"model": mcfg.to_dict(), "train": tcfg.to_dict(), "data": str(data)},
                                               indent=2))
    barrier()
    extra = {"data": {"source": str(data), "binarize": tcfg.binarize, "seed": tcfg.seed + 7,
                      "dequantized_8bit": tf.kind == "dequantize", "dtype": str(tr.x.dtype)}}
    trainer = Trainer(model, tcfg, out_dir=out, progress=progress, model_extra=extra)
    hist = trainer.fit(x_tr, x_va, tf, _labels(tr, mcfg.n_conditions),
                       None if va is None else _labels(va, mcfg.n_conditions), resume=resume)
    if main:
        warn_if_collapsed(model, x_tr if x_va is None else x_va,
                          _labels(tr if va is None else va, mcfg.n_conditions))
    return model, hist


def _train_streamed(data: str | Path, out: Path, saved: ModelConfig | None, model_config: ModelConfig | None,
                    tcfg: TrainConfig, resume: bool, progress: bool, conditional: bool, replaced: list[Path],
                    main: bool) -> tuple[VAE, History]:
    """:func:`train` with the training rows read from disk per batch (``stream=True``)."""
    cache = out / ".stream-cache"
    if main:
        open_rows(data, cache)  # CSV/Parquet are spilled to a float32 .npy once, by rank 0
    barrier()
    rows = open_rows(data, cache)
    if saved is not None:
        mcfg = saved
    else:
        n_cond = 0
        if conditional:
            if rows.labels is None:
                raise DataError(f"{rows.source}: --conditional needs labels (sub-folders of an image folder)")
            n_cond = int(rows.labels.max()) + 1
        mcfg = replace(model_config or ModelConfig(), input_shape=infer_image_shape(np.empty((0, *rows.shape))),
                       n_conditions=n_cond)
    seed_everything(tcfg.seed)
    model = VAE(mcfg)
    x_tr, x_va, valid_rows, tf = prepare_stream(rows, model.likelihood, tcfg.binarize, seed=tcfg.seed)
    c_tr = c_va = None
    if mcfg.n_conditions:
        if rows.labels is None:
            raise DataError(f"{rows.source}: this run is conditional but the data has no labels")
        c_tr = torch.from_numpy(rows.labels[x_tr.index].astype(np.int64))
        c_va = torch.from_numpy(rows.labels[valid_rows].astype(np.int64))
    if main:
        out.mkdir(parents=True, exist_ok=True)
        retire_artifacts(replaced)
        atomic_write_text(out / "run.json", json.dumps({"model": mcfg.to_dict(), "train": tcfg.to_dict(),
                                                        "data": str(data), "stream": True}, indent=2))
    barrier()
    extra = {"data": {"source": str(data), "binarize": tcfg.binarize, "seed": tcfg.seed + 7, "stream": True,
                      "dequantized_8bit": tf.kind == "dequantize", "dtype": str(rows.dtype)}}
    trainer = Trainer(model, tcfg, out_dir=out, progress=progress, model_extra=extra)
    hist = trainer.fit(x_tr, x_va, tf, c_tr, c_va, resume=resume)
    if main:
        warn_if_collapsed(model, x_va, c_va)
    return model, hist


def warn_if_collapsed(model: VAE, x: torch.Tensor, c: torch.Tensor | None = None) -> int:
    """Active latent units on x (the validation split); fewer than a quarter of the latent dimensions → a one-line
    :class:`~vaekit.errors.VaekitWarning` naming the remedies. Returns the count."""
    was = model.training
    model.eval()
    try:
        au = count_active_units(model, x, c)
    finally:
        model.train(was)
    d = model.config.latent_dim
    if au < d / 4:
        warnings.warn(f"only {au} of {d} latent units are active (variance of the posterior mean over the validation "
                      f"examples > {ACTIVE_VARIANCE:g}): the posterior collapsed; retrain with a KL warm-up "
                      "(--warmup EPOCHS; TrainConfig.warmup_epochs) or free bits (--free-bits NATS; "
                      "TrainConfig.free_bits)", VaekitWarning, stacklevel=2)
    return au


def evaluate_file(model_dir: str | Path, data: str | Path, split: str | None = None, k: int = 5000,
                  batch_size: int = 100, precision: str = "fp32", seed: int = 0, limit: int = 0,
                  progress: bool = False, device: str = "auto", threads: int | None = None,
                  stream: bool = False) -> dict[str, Any]:
    """IS-NLL, ELBO, KL, bits/dim of a trained model on one split of a data file (``split`` None: 'test' of an .npz,
    the only split, 'train', of other formats; a split the file does not have → DataError listing its splits).
    ``stream``: rows are read from disk batch by batch (:mod:`vaekit.data.stream`), memory bounded by the batch."""
    model, extra = load(model_dir)
    dev = resolve_device(device)
    split = split or ("test" if Path(data).suffix == ".npz" else "train")
    if stream:
        if split != "train":
            raise DataError(f"{data}: a streamed file holds one split, 'train', not {split!r}")
        with tempfile.TemporaryDirectory() as cache:
            x, c = stream_for_model(model, extra, open_rows(data, cache)), None
            return _evaluate(model, extra, x, c, dev, data, split, k, batch_size, precision, seed, limit, progress,
                             threads)
    ds = load_array(data, split)
    x, c = prepare_for_model(model, extra, ds)
    return _evaluate(model, extra, x, c, dev, data, split, k, batch_size, precision, seed, limit, progress, threads)


def stream_for_model(model: VAE, extra: dict[str, Any], rows: Any) -> StreamedData:
    """Out-of-core rows checked against a trained model (values per row, model space per batch)."""
    d = int(np.prod(rows.shape))
    if d != model.config.data_dim:
        raise DataError(f"{rows.source}: examples have shape {rows.shape} ({d} values), "
                        f"the model expects {model.config.input_shape} ({model.config.data_dim} values)")
    if extra.get("data", {}).get("binarize", "none") != "none":
        raise DataError(f"{rows.source}: this model was trained on binarized data, which streaming cannot "
                        "reproduce; binarize the file first or evaluate in memory")
    if model.config.n_conditions:
        raise DataError(f"{rows.source}: streaming evaluation of a conditional model is not supported")
    return StreamedData(rows, model.likelihood)


def _evaluate(model: VAE, extra: dict[str, Any], x: Any, c: torch.Tensor | None, dev: torch.device,
              data: str | Path, split: str, k: int, batch_size: int, precision: str, seed: int, limit: int,
              progress: bool, threads: int | None) -> dict[str, Any]:
    """:func:`evaluate` on prepared data (a tensor, or rows streamed from disk) with the runtime's threads."""
    if limit:
        x = x[:limit] if isinstance(x, torch.Tensor) else StreamedData(x.rows, x.likelihood, x.index[:limit])
        c = None if c is None else c[:limit]
    if k < 1:
        raise VaekitError(f"k must be >= 1, got {k}")
    n_params = sum(p.numel() for p in model.parameters())
    with runtime_threads(resolve_threads(threads or None, n_params)):
        res = evaluate(model.to(dev), x.to(dev), k=k, batch_size=batch_size, c=None if c is None else c.to(dev),
                       seed=seed, precision=resolve_precision(precision, dev),
                       dequantized_8bit=extra.get("data", {}).get("dequantized_8bit", False), progress=progress)
    res.update({"data": str(data), "split": split})
    return res


def image_shape(model: VAE) -> tuple[int, ...]:
    shape = model.config.input_shape
    if len(shape) == 1:
        s = int(round(math.sqrt(shape[0])))
        return (s, s) if s * s == shape[0] else (1, shape[0])
    return shape


def to_display(model: VAE, x: torch.Tensor) -> np.ndarray:
    """Model-space values → [0, 1] floats for pictures."""
    return model.likelihood.to_unit(x.detach().cpu()).numpy()


def condition_labels(model: VAE, label: int | None, n: int) -> torch.Tensor | None:
    """n copies of ``label`` for a conditional model, None for an unconditional one; a missing, out-of-range or
    superfluous label is a one-line VaekitError."""
    k = model.config.n_conditions
    if not k:
        if label is not None:
            raise VaekitError("--label given, but this model is not conditional")
        return None
    if label is None or not 0 <= label < k:
        raise VaekitError(f"this model is conditional: pass --label in 0..{k - 1}")
    return torch.full((n,), label, dtype=torch.long)


def sample(model_dir: str | Path, n: int = 64, out: str | Path | None = None, temperature: float = 1.0,
           seed: int = 0, label: int | None = None) -> np.ndarray:
    """n samples E[x|z], z ~ p(z) (temperature-scaled); with ``out``, also a PNG grid (or .npy)."""
    model, _ = load(model_dir)
    if n < 1:
        raise VaekitError(f"n must be >= 1, got {n}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise VaekitError(f"temperature must be a finite number > 0, got {temperature}")
    c = condition_labels(model, label, n)
    x = model.sample(n, torch.Generator().manual_seed(seed), temperature, c=c)
    arr = to_display(model, x)
    if out is not None:
        _write_images(Path(out), arr, model)
    return arr


def reconstruct(model_dir: str | Path, data: str | Path, split: str | None = None, n: int = 16,
                out: str | Path | None = None) -> np.ndarray:
    """Rows of (input, reconstruction E[x|z=μ(x)]) for the first n examples; with ``out`` a PNG. ``split`` as in
    :func:`evaluate_file`."""
    model, extra = load(model_dir)
    ds = load_array(data, split or ("test" if Path(data).suffix == ".npz" else "train"))
    x, c = prepare_for_model(model, extra, ds)
    x, c = x[:n], None if c is None else c[:n]
    rec = model.reconstruct(x, c)
    pair = np.concatenate([to_display(model, x), to_display(model, rec)])
    if out is not None:
        _write_images(Path(out), pair, model, ncol=len(x))
    return pair


def _write_images(out: Path, arr: np.ndarray, model: VAE, ncol: int | None = None) -> None:
    if out.suffix == ".npy":
        atomic_save(out, lambda tmp: np.save(tmp, arr))
    elif out.suffix.lower() == ".png":
        save_grid(out, arr, image_shape(model), ncol=ncol, scale=2)
    else:
        raise VaekitError(f"{out}: output must end in .png or .npy")
