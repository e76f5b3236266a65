"""``vaekit impute`` (tables, MIWAE) and ``vaekit inpaint`` (images): thin layers over the imputation API."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vaekit.errors import VaekitError
from vaekit.options import (
    KIND_OPTIONS,
    MAX_IMPUTATIONS,
    MAX_SAMPLES,
    cli_wording,
    column_kinds,
    count_option,
    device_option,
    ZOO_OPTIONS,
    layers_option,
    names,
    posterior_option,
    prior_option,
    threads_option,
)

app = typer.Typer(rich_markup_mode=None, help="Imputation of tables and inpainting of images.")


@app.command()
def impute(
    data: Path = typer.Argument(..., help="Table with missing values (.csv or .parquet); empty cells / NaN are missing."),
    out: Path = typer.Option(..., "--out", help="Completed table (.csv or .parquet)."),
    multiple: int = count_option(0, "--multiple", lo=0, hi=MAX_IMPUTATIONS, help="M > 0: M imputations in ONE long "
                                 "table, a first column 'imputation' (1..M) followed by the M completed copies "
                                 "stacked in order; 0 = one completed table."),
    uncertainty: Optional[Path] = typer.Option(None, "--uncertainty", help="Also write per-entry uncertainty here "
                                               "(sd of draws for numbers, 1 − p(imputed value) otherwise; 0 = observed)."),
    na_values: str = typer.Option("", "--na-values", help="Extra strings meaning missing, comma-separated (e.g. '?,n/a')."),
    ignore: str = typer.Option("", help="Columns copied through untouched and not used (IDs, labels)."),
    categorical: str = typer.Option("", help="Columns to treat as categorical (comma-separated)."),
    binary: str = typer.Option("", help="Columns to treat as binary."),
    continuous: str = typer.Option("", help="Columns to treat as continuous."),
    n_samples: int = count_option(250, "--n-samples", hi=MAX_SAMPLES, help="Importance samples L per row (rows "
                                  "are imputed in blocks, so memory stays bounded; VAEImputer's default)."),
    max_steps: int = typer.Option(0, "--max-steps", help="Training steps; 0 = VAEImputer's default ('auto': "
                                  "⌈512,000 / batch rows⌉; fewer = faster, slightly less accurate)."),
    missing_mechanism: str = typer.Option("mar", "--missing-mechanism", help="'mar' (MIWAE: missingness "
                                           "ignorable) or 'self_masking' (not-MIWAE: a value's own size makes it "
                                           "missing, e.g. high values go missing more often; continuous columns)."),
    transform: str = typer.Option("standard", help="Continuous columns: standard | quantile | yeo-johnson | none "
                                  "(quantile helps strongly skewed tables; README, imputation)."),
    prior: str = prior_option(),
    posterior: str = posterior_option(),
    stochastic_layers: int = layers_option(),
    seed: int = typer.Option(0),
    device: str = device_option(),
    threads: int = threads_option(),
    dask: Optional[str] = typer.Option(None, "--dask", help="Impute by partitions on a Dask cluster: a scheduler "
                                       "address (tcp://host:8786), or 'local' / 'local:N' (a LocalCluster); one "
                                       "completed table (not with --multiple/--uncertainty; needs vaekit[dask])."),
    fit_rows: int = typer.Option(1_000_000, "--fit-rows", help="With --dask: fit on all rows up to this many, "
                                 "else on a seeded uniform sample of about this many."),
) -> None:
    """Fill the missing values of a table with a VAE trained on it (MIWAE): conditional means / most probable values."""

    kinds = column_kinds(categorical, binary, continuous)
    if dask is not None and (multiple or uncertainty is not None):
        raise VaekitError("--dask writes one completed table; --multiple and --uncertainty run without --dask")
    with cli_wording(data, missing_values="--na-values", column_kinds=KIND_OPTIONS, n_samples="--n-samples",
                     max_steps="--max-steps", missing_mechanism="--missing-mechanism", column_transform="--transform",
                     **ZOO_OPTIONS):
        if dask is not None:
            from vaekit.jobs.impute.on_dask import impute_file_dask

            res = impute_file_dask(data, out, dask, names(ignore), names(na_values), kinds, fit_rows,
                                   n_samples=n_samples, max_steps=max_steps or "auto", random_state=seed, device=device,
                                   n_threads=threads or None, missing_mechanism=missing_mechanism,
                                   prior=prior, posterior=posterior, stochastic_layers=stochastic_layers,
                                   column_transform=transform)
        else:
            from vaekit.jobs.impute.files import impute_file

            res = impute_file(data, out, multiple, uncertainty, names(ignore), names(na_values), kinds,
                              n_samples=n_samples, max_steps=max_steps or "auto", random_state=seed, device=device,
                              n_threads=threads or None, missing_mechanism=missing_mechanism,
                              prior=prior, posterior=posterior, stochastic_layers=stochastic_layers,
                              column_transform=transform)
    what = f"{multiple} imputations (long format, column 'imputation')" if multiple else "completed table"
    typer.echo(f"imputed {res['missing']} missing value(s) in {res['rows']} rows × {res['columns']} columns in "
               f"{res['seconds']:.1f} s; {what} in {out}" + (f"; uncertainty in {uncertainty}" if uncertainty else ""))


@app.command()
def inpaint(
    model_dir: Path = typer.Argument(..., help="Image model folder (or run folder) from 'vaekit train'."),
    image: Path = typer.Argument(..., help="Image to complete (PNG; the model's size and channels)."),
    mask: Path = typer.Option(..., "--mask", help="PNG of the same size: white (>= 128) = pixels to fill."),
    out: Path = typer.Option(..., "--out", help="Output PNG; unmasked pixels are copied unchanged."),
    n_samples: int = count_option(1000, "--n-samples", hi=MAX_SAMPLES, help="Importance samples L."),
    rounds: int = typer.Option(2, min=0, help="Proposal refinements (re-encode the completed image)."),
    seed: int = typer.Option(0),
) -> None:
    """Fill masked pixels with E[x_mis | x_obs] under a trained image VAE (importance-weighted, masked likelihood)."""
    from vaekit.jobs.impute.inpaint import inpaint_file

    res = inpaint_file(model_dir, image, mask, out, n_samples, rounds, seed)
    typer.echo(f"filled {res['filled_pixels']} of {res['pixels']} pixels (effective sample size {res['ess']:.1f} "
               f"of {n_samples}); wrote {out}")
