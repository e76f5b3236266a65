"""Core commands: ``vaekit train | eval | sample | reconstruct | demo`` over :mod:`vaekit.core.workflows`."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from vaekit.cli.demo import run_demo
from vaekit.core import workflows
from vaekit.core.config import ModelConfig, TrainConfig
from vaekit.errors import VaekitError
from vaekit.options import ints

app = typer.Typer(rich_markup_mode=None, help="Train, evaluate, sample and reconstruct a VAE; the demo report.")


@app.command()
def train(
    data: Path = typer.Option(..., "--data", help="Data file: .npz (train/valid/test keys), .npy, IDX, image folder, CSV/Parquet."),
    out: Path = typer.Option(..., "--out", help="Run folder: checkpoint, metrics.csv, model/."),
    epochs: int = typer.Option(100, help="Maximum number of epochs."),
    time_limit: float = typer.Option(0.0, "--time-limit", help="Stop after this many minutes (0 = none)."),
    seed: int = typer.Option(0, help="Random seed (same seed, same model)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    likelihood: str = typer.Option("bernoulli", help="bernoulli | gaussian | gaussian_learned | logistic | categorical."),
    n_categories: int = typer.Option(0, help="Categories per dimension (categorical likelihood)."),
    arch: str = typer.Option("mlp", help="mlp | conv."),
    latent_dim: int = typer.Option(40, "--latent-dim", help="Latent dimensions."),
    hidden: str = typer.Option("300,300", help="Hidden layer sizes, comma-separated."),
    channels: str = typer.Option("32,64", help="Conv channels per stride-2 layer (arch conv)."),
    activation: str = typer.Option("tanh", help="tanh | relu | elu | gelu | softplus | silu."),
    objective: str = typer.Option("elbo", help="elbo | iwae."),
    k: int = typer.Option(5, "--k", help="Importance samples for the IWAE objective."),
    beta: float = typer.Option(1.0, help="KL weight β (β-VAE)."),
    warmup: float = typer.Option(0.0, help="KL warm-up epochs (β rises linearly from 0)."),
    free_bits: float = typer.Option(0.0, "--free-bits", help="Free bits λ per latent dimension (nats)."),
    lr: float = typer.Option(1e-3, help="Learning rate."),
    batch_size: int = typer.Option(100, "--batch-size", min=1),
    optimizer: str = typer.Option("adam", help="adam | adamw."),
    weight_decay: float = typer.Option(0.0, "--weight-decay"),
    schedule: str = typer.Option("cosine", help="constant | cosine | plateau."),
    binarize: str = typer.Option("none", help="none | static | dynamic (Bernoulli only)."),
    precision: str = typer.Option("fp32", help="fp32 | bf16 (autocast)."),
    early_stopping: int = typer.Option(0, "--early-stopping", help="Patience in epochs (0 = off)."),
    conditional: bool = typer.Option(False, "--conditional", help="Condition on the data's labels (CVAE)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Train a VAE; the best model (by validation ELBO) is written to OUT/model."""

    mcfg = ModelConfig(latent_dim=latent_dim, arch=arch, hidden=ints(hidden, "hidden"),
                       channels=ints(channels, "channels"), activation=activation, likelihood=likelihood,
                       n_categories=n_categories, input_shape=(1, 8, 8) if arch == "conv" else (1,))
    tcfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
                       schedule=schedule, objective=objective, iwae_k=k, beta=beta, warmup_epochs=warmup,
                       free_bits=free_bits, binarize=binarize, precision=precision, early_stopping=early_stopping,
                       time_limit_min=time_limit, seed=seed)
    model, hist = workflows.train(data, out, mcfg, tcfg, resume=resume, progress=progress, conditional=conditional)
    last = hist.epochs[-1] if hist.epochs else {}
    typer.echo(f"trained {len(hist.epochs)} epoch(s), stopped by {hist.stopped}; best epoch {hist.best_epoch + 1}; "
               f"val ELBO {last.get('val_elbo', float('nan')):.3f}; model in {out / 'model'}")


@app.command("eval")
def eval_(
    model_dir: Path = typer.Argument(..., help="Model folder (or run folder)."),
    data: Path = typer.Option(..., "--data", help="Data file."),
    split: str = typer.Option("test", help="Split of an .npz: train | valid | test."),
    k: int = typer.Option(5000, "--k", help="Importance samples for the NLL."),
    batch_size: int = typer.Option(100, "--batch-size", min=1),
    precision: str = typer.Option("fp32", help="fp32 | bf16 (decoder matmuls in bfloat16)."),
    seed: int = typer.Option(0),
    limit: int = typer.Option(0, min=0, help="Only the first N examples (0 = all)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Importance-sampled NLL, ELBO, KL, bits/dim and active units of a trained model."""

    if precision not in ("fp32", "bf16"):
        raise VaekitError(f"--precision must be fp32 or bf16, got {precision!r}")
    res = workflows.evaluate_file(model_dir, data, split, k, batch_size, precision, seed, limit,
                                  progress=not as_json and sys.stderr.isatty())
    if as_json:
        typer.echo(json.dumps(res))
    else:
        for key in ("nll", "elbo", "recon", "kl", "bits_per_dim", "active_units", "n", "k"):
            typer.echo(f"{key:>13}: {res[key]:.4f}" if isinstance(res[key], float) else f"{key:>13}: {res[key]}")


@app.command()
def sample(
    model_dir: Path = typer.Argument(..., help="Model folder (or run folder)."),
    out: Path = typer.Option(Path("samples.png"), "--out", "-o", help="PNG grid or .npy array."),
    n: int = typer.Option(64, "--n", min=1, help="Number of samples."),
    temperature: float = typer.Option(1.0, help="Scale of the prior draw."),
    seed: int = typer.Option(0),
    label: Optional[int] = typer.Option(None, help="Class to generate (conditional models)."),
) -> None:
    """Draw samples from the prior and decode them."""

    workflows.sample(model_dir, n, out, temperature, seed, label)
    typer.echo(f"wrote {n} samples to {out}")


@app.command()
def reconstruct(
    model_dir: Path = typer.Argument(..., help="Model folder (or run folder)."),
    data: Path = typer.Option(..., "--data", help="Data file."),
    split: str = typer.Option("test"),
    n: int = typer.Option(16, "--n", min=1),
    out: Path = typer.Option(Path("reconstructions.png"), "--out", "-o", help="PNG (inputs over reconstructions) or .npy."),
) -> None:
    """Encode and decode examples: inputs on the top row, reconstructions below."""

    workflows.reconstruct(model_dir, data, split, n, out)
    typer.echo(f"wrote reconstructions to {out}")


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-report"), "--out", help="Report folder."),
    epochs: int = typer.Option(200, help="Training epochs."),
    seed: int = typer.Option(0),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Train a small VAE on scikit-learn's digits (offline) and write an HTML report."""

    index = run_demo(out, epochs=epochs, seed=seed, progress=progress)
    typer.echo(f"report: {index}")
