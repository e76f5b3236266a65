"""Core commands: ``vaekit train | eval | sample | reconstruct | demo`` over :mod:`vaekit.core.workflows`.

PyTorch and the core are imported inside the commands, so that building the app and ``--help`` stay fast."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import typer

from vaekit.errors import VaekitError
from vaekit.options import (
    MAX_SAMPLES,
    count_option,
    device_option,
    ints,
    seed_option,
    threads_option,
)

app = typer.Typer(rich_markup_mode=None, help="Train, evaluate, sample and reconstruct a VAE; the demo report.")


# The CLI's defaults are the config dataclasses' defaults, written out here so that the app is built without importing
# vaekit.core (PyTorch); tests/cli/test_main.py checks that they equal TrainConfig()'s and ModelConfig()'s.
_T = SimpleNamespace(epochs=250, time_limit_min=0.0, fit_schedule_to_time=True, objective="iwae", iwae_k=10, beta=1.0,
                     warmup_epochs=10.0, free_bits=0.0, lr=1e-3, batch_size=100, optimizer="adam", weight_decay=0.0,
                     schedule="cosine", binarize="none", precision="auto", early_stopping=0)
_M = SimpleNamespace(latent_dim=40, arch="mlp", hidden=(300, 300), channels=(32, 64), activation="tanh",
                     likelihood="bernoulli", n_categories=0, prior="standard_normal", prior_components=0,
                     stochastic_layers=1, posterior="gaussian", flow_steps=2)
_csv = lambda v: ",".join(map(str, v))  # noqa: E731


@app.command()
def train(
    data: Path = typer.Option(..., "--data", help="Data file: .npz (train/valid/test keys), .npy, IDX, image folder, CSV/Parquet."),
    out: Path = typer.Option(..., "--out", help="Run folder: checkpoint, metrics.csv, model/."),
    epochs: int = typer.Option(_T.epochs, help="Maximum number of epochs (the cosine schedule spans them)."),
    time_limit: float = typer.Option(_T.time_limit_min, "--time-limit", min=0.0,
                                     help="Stop after this many minutes of this invocation (0 = none)."),
    fit_schedule: bool = typer.Option(_T.fit_schedule_to_time, "--fit-schedule-to-time/--fixed-schedule",
                                      help="With --time-limit: the cosine schedule runs over the time budget "
                                      "(lr reaches its minimum when the time is up) instead of over --epochs."),
    seed: int = seed_option(),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start a new run in an --out that already holds a run, "
                                   "another vaekit artifact or other files (see README, 'Command line')."),
    likelihood: str = typer.Option(_M.likelihood, help="bernoulli | gaussian | gaussian_learned | logistic | categorical."),
    n_categories: int = typer.Option(_M.n_categories, help="Categories per dimension (categorical likelihood)."),
    arch: str = typer.Option(_M.arch, help="mlp | conv | resnet."),
    latent_dim: int = typer.Option(_M.latent_dim, "--latent-dim", help="Latent dimensions."),
    hidden: str = typer.Option(_csv(_M.hidden), help="Hidden layer sizes, comma-separated."),
    channels: str = typer.Option(_csv(_M.channels), help="Conv channels per stride-2 layer (arch conv)."),
    activation: str = typer.Option(_M.activation, help="tanh | relu | elu | gelu | softplus | silu."),
    prior: str = typer.Option(_M.prior, help="standard_normal | mog | vampprior: p(z) (of the top layer when "
                              "--stochastic-layers > 1)."),
    prior_components: int = typer.Option(_M.prior_components, "--prior-components",
                                         help="mog: components; vampprior: pseudo-inputs (0 = 10 / 500)."),
    stochastic_layers: int = typer.Option(_M.stochastic_layers, "--stochastic-layers",
                                          help="Stochastic layers (> 1: hierarchical VAE with top-down inference, "
                                          "--latent-dim each)."),
    posterior: str = typer.Option(_M.posterior, help="gaussian | iaf (inverse autoregressive flow)."),
    flow_steps: int = typer.Option(_M.flow_steps, "--flow-steps", help="IAF steps (--posterior iaf)."),
    objective: str = typer.Option(_T.objective, help="elbo | iwae."),
    k: int = typer.Option(_T.iwae_k, "--k", help="Importance samples for the IWAE objective."),
    beta: float = typer.Option(_T.beta, help="KL weight β (β-VAE)."),
    warmup: float = typer.Option(_T.warmup_epochs, help="KL warm-up epochs (β rises linearly from 0)."),
    free_bits: float = typer.Option(_T.free_bits, "--free-bits", help="Free bits λ per latent dimension (nats)."),
    lr: float = typer.Option(_T.lr, help="Learning rate."),
    batch_size: int = typer.Option(_T.batch_size, "--batch-size", min=1),
    optimizer: str = typer.Option(_T.optimizer, help="adam | adamw."),
    weight_decay: float = typer.Option(_T.weight_decay, "--weight-decay"),
    schedule: str = typer.Option(_T.schedule, help="constant | cosine | plateau."),
    binarize: str = typer.Option(_T.binarize, help="none | static | dynamic (Bernoulli only)."),
    precision: str = typer.Option(_T.precision, help="auto | fp32 | bf16 (auto: bf16 autocast where the CPU/GPU "
                                  "multiplies bf16 natively)."),
    early_stopping: int = typer.Option(_T.early_stopping, "--early-stopping", help="Patience in epochs (0 = off)."),
    conditional: bool = typer.Option(False, "--conditional", help="Condition on the data's labels (CVAE)."),
    device: str = device_option(),
    threads: int = threads_option(),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    stream: bool = typer.Option(False, "--stream", help="Leave the training rows on disk and read them per batch "
                                "(.npy, CSV, Parquet, image folder): memory bounded by the batch, for data larger "
                                "than RAM. Validation: a seeded 10% (at most 10,000 rows) in memory."),
) -> None:
    """Train a VAE (default: the measured best recipe, IWAE k=10 + KL warm-up + cosine + bf16 where native); the best
    model by the validation bound is written to OUT/model. Same seed, same bytes; --resume after any stop gives
    the uninterrupted result."""
    from vaekit.core import workflows
    from vaekit.core.config import ModelConfig, TrainConfig
    from vaekit.runtime import world

    mcfg = ModelConfig.before_data(latent_dim=latent_dim, arch=arch, hidden=ints(hidden, "hidden"),
                                   channels=ints(channels, "channels"), activation=activation,
                                   likelihood=likelihood, n_categories=n_categories, prior=prior,
                                   prior_components=prior_components, stochastic_layers=stochastic_layers,
                                   posterior=posterior, flow_steps=flow_steps)
    tcfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
                       schedule=schedule, objective=objective, iwae_k=k, beta=beta, warmup_epochs=warmup,
                       free_bits=free_bits, binarize=binarize, precision=precision, early_stopping=early_stopping,
                       time_limit_min=time_limit, fit_schedule_to_time=fit_schedule, seed=seed, device=device,
                       num_threads=threads)
    model, hist = workflows.train(data, out, mcfg, tcfg, resume=resume, progress=progress, conditional=conditional,
                                  overwrite=overwrite, stream=stream)
    last = hist.epochs[-1] if hist.epochs else {}
    if not world().main:  # under torchrun rank 0 reports
        return
    typer.echo(f"trained {len(hist.epochs)} epoch(s), stopped by {hist.stopped}; best epoch {hist.best_epoch + 1}; "
               f"val ELBO {last.get('val_elbo', float('nan')):.3f}; model in {out / 'model'}")


@app.command("eval")
def eval_(
    model_dir: Path = typer.Argument(..., help="Model folder (or run folder)."),
    data: Path = typer.Option(..., "--data", help="Data file."),
    split: Optional[str] = typer.Option(None, help="train | valid | test (default: test of an .npz; other files "
                                        "hold one split, train); a split the file lacks is refused."),
    k: int = typer.Option(5000, "--k", help="Importance samples for the NLL."),
    batch_size: int = typer.Option(100, "--batch-size", min=1),
    precision: str = typer.Option("fp32", help="fp32 | bf16 (decoder matmuls in bfloat16)."),
    seed: int = seed_option(),
    limit: int = typer.Option(0, min=0, help="Only the first N examples (0 = all)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    device: str = device_option(),
    threads: int = threads_option(),
    stream: bool = typer.Option(False, "--stream", help="Read the rows from disk batch by batch (.npy, CSV, Parquet, "
                                "image folder) instead of loading the file: memory bounded by the batch."),
) -> None:
    """Importance-sampled NLL, ELBO, KL, bits/dim and active units of a trained model."""
    if precision not in ("auto", "fp32", "bf16"):
        raise VaekitError(f"--precision must be auto, fp32 or bf16, got {precision!r}")
    from vaekit.core import workflows

    res = workflows.evaluate_file(model_dir, data, split, k, batch_size, precision, seed, limit,
                                  progress=not as_json and sys.stderr.isatty(), device=device, threads=threads,
                                  stream=stream)
    if as_json:
        typer.echo(json.dumps(res))
    else:
        for key in ("nll", "elbo", "recon", "kl", "bits_per_dim", "active_units", "n", "k"):
            typer.echo(f"{key:>13}: {res[key]:.4f}" if isinstance(res[key], float) else f"{key:>13}: {res[key]}")


@app.command()
def sample(
    model_dir: Path = typer.Argument(..., help="Model folder (or run folder)."),
    out: Path = typer.Option(Path("samples.png"), "--out", "-o", help="PNG grid or .npy array."),
    n: int = count_option(64, "--n", hi=MAX_SAMPLES, help="Number of samples."),
    temperature: float = typer.Option(1.0, help="Scale of the prior draw."),
    seed: int = typer.Option(0),
    label: Optional[int] = typer.Option(None, help="Class to generate (conditional models)."),
) -> None:
    """Draw samples from the prior and decode them."""
    from vaekit.core import workflows

    workflows.sample(model_dir, n, out, temperature, seed, label)
    typer.echo(f"wrote {n} samples to {out}")


@app.command()
def reconstruct(
    model_dir: Path = typer.Argument(..., help="Model folder (or run folder)."),
    data: Path = typer.Option(..., "--data", help="Data file."),
    split: Optional[str] = typer.Option(None, help="As for eval: default test of an .npz, train of other files."),
    n: int = typer.Option(16, "--n", min=1),
    out: Path = typer.Option(Path("reconstructions.png"), "--out", "-o", help="PNG (inputs over reconstructions) or .npy."),
) -> None:
    """Encode and decode examples: inputs on the top row, reconstructions below."""
    from vaekit.core import workflows

    workflows.reconstruct(model_dir, data, split, n, out)
    typer.echo(f"wrote reconstructions to {out}")


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-report"), "--out", help="Report folder."),
    epochs: int = typer.Option(200, help="Training epochs."),
    seed: int = typer.Option(0),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into an --out that is not empty and holds no "
                                   "earlier report (its other files are kept; same-named ones are replaced)."),
) -> None:
    """Train a small VAE on scikit-learn's digits (offline) and write an HTML report."""
    from vaekit.cli.demo import run_demo

    index = run_demo(out, epochs=epochs, seed=seed, progress=progress, overwrite=overwrite)
    typer.echo(f"report: {index}")
