"""vaekit: variational autoencoders for generation, compression, anomaly detection, imputation and latent exploration.

Core (eager): ``ModelConfig``, ``TrainConfig``, ``VAE``, ``Trainer``, ``evaluate``, ``save_model``, ``load_model``.
Heavy modules load on first use: ``vaekit.VAEAnomalyDetector``, ``vaekit.TabularSchema``,
``vaekit.VAEImputer``, ``vaekit.TabularGenerator``.
"""
from __future__ import annotations

from typing import Any

from .config import ModelConfig, TrainConfig
from .errors import CheckpointError, DataError, TrainingError, VaekitError
from .evaluate import evaluate
from .io import load_model, save_model
from .model import VAE, VAEOutput
from .train import Trainer

__version__ = "0.1.0"
__all__ = ["ModelConfig", "TrainConfig", "VAE", "VAEOutput", "Trainer", "evaluate", "save_model", "load_model",
           "VaekitError", "DataError", "CheckpointError", "TrainingError", "VAEAnomalyDetector", "TabularSchema",
           "VAEImputer", "TabularGenerator"]


def __getattr__(name: str) -> Any:
    if name == "VAEAnomalyDetector":
        from .anomaly import VAEAnomalyDetector

        return VAEAnomalyDetector
    if name == "VAEImputer":
        from .impute import VAEImputer

        return VAEImputer
    if name == "TabularGenerator":
        from .generate import TabularGenerator

        return TabularGenerator
    if name == "TabularSchema":
        from .data.tabular import TabularSchema

        return TabularSchema
    raise AttributeError(f"module 'vaekit' has no attribute {name!r}")
