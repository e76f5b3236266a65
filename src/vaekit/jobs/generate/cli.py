"""CLI for synthetic tables: ``vaekit generate fit TABLE --out DIR``, ``vaekit generate sample DIR -n N --out FILE``."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vaekit.options import (
    KIND_OPTIONS,
    MAX_ROWS,
    cli_wording,
    column_kinds,
    count_option,
    device_option,
    ints,
    ZOO_OPTIONS,
    layers_option,
    names,
    posterior_option,
    prior_option,
    threads_option,
)

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Synthetic table rows: fit a (conditional) VAE on a table, "
                                                      "sample new rows.")


@app.command("fit")
def generate_fit(
    table: Path = typer.Argument(..., help="Training table (.csv or .parquet), no missing values."),
    out: Path = typer.Option(..., "--out", help="Model folder for the fitted generator."),
    condition_columns: str = typer.Option("", "--condition-columns", help="Columns to condition on (comma-separated); "
                                          "'generate sample --where' can then fix their values."),
    categorical: str = typer.Option("", help="Columns to treat as categorical (comma-separated)."),
    binary: str = typer.Option("", help="Columns to treat as binary."),
    continuous: str = typer.Option("", help="Columns to treat as continuous."),
    ignore: str = typer.Option("", help="Columns to leave out (IDs)."),
    transform: str = typer.Option("quantile", help="Continuous columns: quantile | standard | yeo-johnson | none."),
    latent_dim: int = typer.Option(16, "--latent-dim"),
    hidden: str = typer.Option("256,256", help="Hidden layer sizes, comma-separated."),
    epochs: int = typer.Option(300, help="Maximum epochs."),
    max_steps: int = typer.Option(4000, "--max-steps", help="Maximum optimizer steps."),
    early_stopping: int = typer.Option(30, "--early-stopping", help="Stop after this many epochs without a better "
                                       "held-out ELBO (0 = never; tables of 50+ rows hold out 10%)."),
    time_limit: float = typer.Option(0.0, "--time-limit", min=0.0,
                                     help="Stop training after this many minutes (0 = none), as 'vaekit train'."),
    prior: str = prior_option(),
    posterior: str = posterior_option(),
    stochastic_layers: int = layers_option(),
    seed: int = typer.Option(0),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into an --out that already holds a generator, "
                                   "another vaekit artifact or other files (see README, 'Command line')."),
    progress: bool = typer.Option(False, "--progress/--no-progress"),
    device: str = device_option(),
    threads: int = threads_option(),
) -> None:
    """Fit a VAE generator on a table (mixed likelihood); conditional on --condition-columns when given."""
    from vaekit.jobs.generate.files import fit_file

    kinds = column_kinds(categorical, binary, continuous)
    with cli_wording(table, column_kinds=KIND_OPTIONS, condition_columns="--condition-columns",
                     column_transform="--transform", latent_dim="--latent-dim", max_steps="--max-steps",
                     early_stopping="--early-stopping", time_limit_min="--time-limit", **ZOO_OPTIONS):
        res = fit_file(table, out, names(ignore), kinds, overwrite, condition_columns=names(condition_columns),
                       column_transform=transform, latent_dim=latent_dim, hidden=ints(hidden, "hidden"), epochs=epochs,
                       max_steps=max_steps, early_stopping=early_stopping, time_limit_min=time_limit, prior=prior,
                       posterior=posterior, stochastic_layers=stochastic_layers, random_state=seed, verbose=progress,
                       device=device, n_threads=threads or None)
    kinds_txt = ", ".join(f"{n}:{k}" for n, k in res["kinds"])
    typer.echo(f"fitted on {res['rows']} rows ({kinds_txt}) in {res['seconds']:.1f} s, {res['epochs']} epoch(s); "
               f"generator in {out}")


@app.command("sample")
def generate_sample(
    model_dir: Path = typer.Argument(..., help="Generator folder written by 'vaekit generate fit'."),
    n: int = count_option(1000, "-n", "--n", hi=MAX_ROWS, help="Number of rows."),
    out: Path = typer.Option(..., "--out", help="Output table (.csv or .parquet)."),
    where: Optional[list[str]] = typer.Option(None, "--where", help="COLUMN=VALUE for a condition column; repeat for "
                                              "several. Unfixed condition columns follow the training data."),
    temperature: float = typer.Option(1.0, help="Spread: z ~ N(0, T²I), σ·T, logits / T."),
    seed: int = typer.Option(0),
    device: str = device_option(),
    threads: int = threads_option(),
) -> None:
    """Draw new rows from a fitted generator into a CSV/Parquet table (training column order and dtypes)."""
    from vaekit.jobs.generate.files import sample_file

    with cli_wording(model_dir, conditions="--where", condition_columns="--condition-columns",
                     temperature="--temperature"):
        res = sample_file(model_dir, n, out, where or [], temperature, seed, device=device, n_threads=threads or None)
    typer.echo(f"wrote {res['rows']} rows to {res['out']} in {res['seconds']:.1f} s")
