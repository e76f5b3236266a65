"""vaekit: variational autoencoders for generation, compression, anomaly detection, imputation and latent exploration.

Layers, each importing only those before it: errors/registry/files/options → runtime → data → dask → core → jobs → deploy → cli
(``vaekit.dask``: batch jobs on Dask, the optional extra ``vaekit[dask]``; imported only when used).
Core: ``ModelConfig``, ``TrainConfig``, ``VAE``, ``Trainer``, ``evaluate``, ``prepare``, ``save_model``,
``load_model``; the jobs' estimators: ``vaekit.VAEAnomalyDetector``, ``vaekit.VAEImputer``,
``vaekit.TabularGenerator``, ``vaekit.TabularSchema``. All of them load on first use (PEP 562), so that
``import vaekit`` — and ``vaekit --version`` / ``--help`` — does not import PyTorch; the errors load eagerly.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vaekit.errors import CheckpointError, DataError, TrainingError, VaekitError

if TYPE_CHECKING:
    from vaekit.core.checkpoint import load_model, save_model
    from vaekit.core.config import ModelConfig, TrainConfig
    from vaekit.core.evaluate import evaluate
    from vaekit.core.model import VAE, VAEOutput
    from vaekit.core.preprocess import prepare
    from vaekit.core.trainer import Trainer

__version__ = "0.2.0"

_LAZY = {
    "ModelConfig": "vaekit.core.config",
    "TrainConfig": "vaekit.core.config",
    "VAE": "vaekit.core.model",
    "VAEOutput": "vaekit.core.model",
    "Trainer": "vaekit.core.trainer",
    "evaluate": "vaekit.core.evaluate",
    "prepare": "vaekit.core.preprocess",
    "save_model": "vaekit.core.checkpoint",
    "load_model": "vaekit.core.checkpoint",
    "VAEAnomalyDetector": "vaekit.jobs.anomaly.detector",
    "VAEImputer": "vaekit.jobs.impute.imputer",
    "TabularGenerator": "vaekit.jobs.generate.tabular",
    "TabularSchema": "vaekit.data.tabular",
}
__all__ = ["ModelConfig", "TrainConfig", "VAE", "VAEOutput", "Trainer", "evaluate", "prepare", "save_model",
           "load_model", "VaekitError", "DataError", "CheckpointError", "TrainingError", "VAEAnomalyDetector",
           "VAEImputer", "TabularGenerator", "TabularSchema"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'vaekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
