"""``vaekit anomaly fit | score``: a thin layer over :class:`VAEAnomalyDetector` and its files."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from vaekit.errors import CheckpointError, VaekitError
from vaekit.files import (
    atomic_write_text,
    check_output_folder,
    read_json,
    retire_artifacts,
)
from vaekit.options import (
    KIND_OPTIONS,
    MAX_K,
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

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                  help="Anomaly detection on tables: fit a detector, score new rows.")
OPTIONS = dict(allow_missing="--allow-missing", column_kinds=KIND_OPTIONS, unknown_category="--unknown",
               missing_score="--missing-score", score_type="--score", column_transform="--transform",
               n_models="--n-models", max_steps="--max-steps", latent_dim="--latent-dim", hidden="--hidden",
               contamination="--contamination", **ZOO_OPTIONS)  # the detector's parameters as this command's options


@app.command("fit")
def anomaly_fit(
    train: Path = typer.Argument(..., help="Training table (.csv or .parquet); unlabelled rows."),
    out: Path = typer.Option(..., "--out", help="Model folder for the fitted detector."),
    contamination: str = typer.Option("0.1", help="Expected outlier fraction in (0, 0.5], or 'auto' (median + 3 robust sd)."),
    score: str = typer.Option("nll", help="nll | elbo | recon_prob | recon_error."),
    k: int = count_option(16, "--k", hi=MAX_K, help="Latent samples per row for the score."),
    n_models: int = typer.Option(5, "--n-models", help="Ensemble size (seeds seed, seed+1, ...)."),
    max_steps: int = typer.Option(1000, "--max-steps", help="Optimizer steps per model (best on a 10% hold-out kept)."),
    latent_dim: int = typer.Option(16, "--latent-dim"),
    hidden: str = typer.Option("64,64", help="Hidden layer sizes, comma-separated."),
    transform: str = typer.Option("standard", help="Continuous columns: standard | quantile | yeo-johnson | none."),
    categorical: str = typer.Option("", help="Columns to treat as categorical (comma-separated)."),
    binary: str = typer.Option("", help="Columns to treat as binary."),
    continuous: str = typer.Option("", help="Columns to treat as continuous."),
    ignore: str = typer.Option("", help="Columns to leave out (IDs, labels); also left out when scoring."),
    allow_missing: bool = typer.Option(False, "--allow-missing", help="Empty cells/NaN are missing values (masked)."),
    unknown: str = typer.Option("abnormal", help="Unseen categories when scoring: abnormal (scored as maximally "
                                "unlikely in their column) | error (refused) | missing (masked: looks normal)."),
    missing_score: str = typer.Option("per_observed", "--missing-score", help="With --allow-missing: per_observed "
                                      "(score per observed column × columns: missing values are not rewarded) | "
                                      "observed (sum over the observed columns only)."),
    prior: str = prior_option(),
    posterior: str = posterior_option(),
    stochastic_layers: int = layers_option(),
    seed: int = typer.Option(0),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into an --out that already holds a detector, "
                                   "another vaekit artifact or other files (see README, 'Command line')."),
    device: str = device_option(),
    threads: int = threads_option(),
) -> None:
    """Fit a VAE anomaly detector on a table; writes the model folder and a histogram of the training scores."""
    from vaekit.data.tables import kept_columns, read_table
    from vaekit.jobs.anomaly.detector import VAEAnomalyDetector
    from vaekit.jobs.anomaly.folder import CLI_FILE
    from vaekit.plots import save_histogram

    replaced = check_output_folder(out, "detector", overwrite)
    df = read_table(train)
    drop = names(ignore)
    df = df[kept_columns(list(df.columns), drop, train, "model")]
    kinds = column_kinds(categorical, binary, continuous)
    try:
        cont: float | str = contamination if contamination == "auto" else float(contamination)
    except ValueError:
        raise VaekitError(f"--contamination must be a number or 'auto', got {contamination!r}") from None
    det = VAEAnomalyDetector(score_type=score, k=k, contamination=cont, latent_dim=latent_dim, hidden=ints(hidden, "hidden"),
                             max_steps=max_steps, n_models=n_models, column_transform=transform, column_kinds=kinds or None,
                             allow_missing=allow_missing, unknown_category=unknown, missing_score=missing_score,
                             prior=prior, posterior=posterior, stochastic_layers=stochastic_layers,
                             random_state=seed, device=device, n_threads=threads or None)
    with cli_wording(train, **OPTIONS):
        det.fit(df)
    retire_artifacts(replaced)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / CLI_FILE, json.dumps({"ignore": drop}))  # before detector.json, which seals it
    det.save(out)
    save_histogram(out / "train_scores.png", {"training": det.decision_scores_}, det.threshold_,
                   title=f"training scores ({score}); {int(det.labels_.sum())} of {len(df)} above the threshold")
    kinds_txt = ", ".join(f"{c.name}:{c.kind}" for c in det.schema_.columns) if det.schema_ is not None else ""
    typer.echo(f"fitted on {len(df)} rows ({kinds_txt}); threshold {det.threshold_:.4g}, "
               f"{int(det.labels_.sum())} training rows flagged; detector in {out}")


@app.command("score")
def anomaly_score(
    model_dir: Path = typer.Argument(..., help="Detector folder written by 'vaekit anomaly fit'."),
    data: Path = typer.Argument(..., help="Table to score (.csv or .parquet), read in chunks."),
    out: Path = typer.Option(..., "--out", help="Output .csv or .parquet: score, label, top_columns; also writes "
                             "OUT.png (the score histogram) unless --plot or --no-plot."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Histogram PNG (default: OUT with .png; an existing "
                                        "OUT.png is replaced only with --overwrite)."),
    no_plot: bool = typer.Option(False, "--no-plot", help="Do not write the histogram."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUT.png (the side output)."),
    chunksize: int = typer.Option(50_000, "--chunksize", help="Rows per chunk (bounds memory)."),
    id_column: Optional[str] = typer.Option(None, "--id-column", help="Column copied to the output, not scored."),
    top: int = typer.Option(3, "--top", help="Top contributing columns listed per row."),
    device: str = device_option(),
    threads: int = threads_option(),
    dask: Optional[str] = typer.Option(None, "--dask", help="Score by partitions on a Dask cluster: a scheduler "
                                       "address (tcp://host:8786), or 'local' / 'local:N' for a LocalCluster of N "
                                       "worker processes; same output file (needs vaekit[dask])."),
) -> None:
    """Score a table in chunks: anomaly score (higher = more abnormal), label (1 = outlier), top columns."""
    from vaekit.jobs.anomaly.files import load_detector, score_file
    from vaekit.jobs.anomaly.folder import CLI_FILE

    side = None if no_plot or plot is not None else out.with_suffix(".png")
    if side is not None and side.exists() and not overwrite and out.suffix.lower() != ".png":
        raise VaekitError(f"{side}: exists, and 'anomaly score' also writes the histogram OUT.png; pass --overwrite "
                          "to replace it, --plot PATH or --no-plot")
    det = load_detector(model_dir).set_params(device=device, n_threads=threads or None)
    det._check_params()  # an unknown --device or a missing GPU: one line, before any file is read
    cli_file = model_dir / CLI_FILE
    ignore = read_json(cli_file, "detector CLI settings").get("ignore", []) if cli_file.is_file() else []
    if not isinstance(ignore, list) or not all(isinstance(c, str) for c in ignore):
        raise CheckpointError(f"{cli_file}: 'ignore' must be a list of column names")
    with cli_wording(data, **OPTIONS):
        if dask is not None:  # the same file, scored by partitions on the cluster (threads: 1 per task there)
            from vaekit.jobs.anomaly.on_dask import score_file_dask

            res = score_file_dask(det, data, out, dask, id_column, top, None if no_plot else (plot or side),
                                  drop=[c for c in ignore if c != id_column])
        else:
            res = score_file(det, data, out, chunksize, id_column, top, None if no_plot else (plot or side),
                             drop=[c for c in ignore if c != id_column])
    typer.echo(f"scored {res['rows']} rows in {res['seconds']:.1f} s ({res['rows_per_second']:.0f} rows/s); "
               f"{res['outliers']} above the threshold {res['threshold']:.4g}; scores in {res['out']}"
               + (f"; histogram {res['plot']}" if res["plot"] else ""))
