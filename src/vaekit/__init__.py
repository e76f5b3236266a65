"""vaekit: variational autoencoders for generation, compression, anomaly detection, imputation and latent exploration.

Layers, each importing only those before it: errors/registry/files/options → runtime → data → dask → core → jobs → deploy → cli
(``vaekit.dask``: batch jobs on Dask, the optional extra ``vaekit[dask]``; imported only when used).
Core (eager): ``ModelConfig``, ``TrainConfig``, ``VAE``, ``Trainer``, ``evaluate``, ``prepare``, ``save_model``,
``load_model``. The jobs' estimators load on first use: ``vaekit.VAEAnomalyDetector``, ``vaekit.VAEImputer``,
``vaekit.TabularGenerator``, ``vaekit.TabularSchema``.
"""
from __future__ import annotations

import importlib
from typing import Any

from vaekit.core.checkpoint import load_model, save_model
from vaekit.core.config import ModelConfig, TrainConfig
from vaekit.core.evaluate import evaluate
from vaekit.core.model import VAE, VAEOutput
from vaekit.core.preprocess import prepare
from vaekit.core.trainer import Trainer
from vaekit.errors import CheckpointError, DataError, TrainingError, VaekitError

__version__ = "0.2.0"

_LAZY = {
    "VAEAnomalyDetector": "vaekit.jobs.anomaly.detector",
    "VAEImputer": "vaekit.jobs.impute.imputer",
    "TabularGenerator": "vaekit.jobs.generate.tabular",
    "TabularSchema": "vaekit.data.tabular",
}
__all__ = ["ModelConfig", "TrainConfig", "VAE", "VAEOutput", "Trainer", "evaluate", "prepare", "save_model",
           "load_model", "VaekitError", "DataError", "CheckpointError", "TrainingError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vaekit' has no attribute {name!r}")
