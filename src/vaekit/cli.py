"""``vaekit`` command line: a thin layer over :mod:`vaekit.workflows`. Bad input → one line on stderr, exit 2."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Optional

import typer

from .config import ModelConfig, TrainConfig
from .errors import VaekitError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Variational autoencoders: train, evaluate, sample, reconstruct, demo, and the five jobs "
                       "(generate, compress, anomaly, impute, latent/explore).")


def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise VaekitError(f"--{name} must be comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise VaekitError(f"--{name} must list positive integers, got {text!r}")
    return vals


def _floats(text: str, name: str) -> list[float]:
    """'0,0.5,1' → [0.0, 0.5, 1.0]; at least one number, all finite."""
    try:
        vals = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise VaekitError(f"--{name} must be comma-separated numbers, got {text!r}") from None
    if not vals or not all(math.isfinite(v) for v in vals):
        raise VaekitError(f"--{name} must list finite numbers, got {text!r}")
    return vals


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
    from . import workflows

    mcfg = ModelConfig(latent_dim=latent_dim, arch=arch, hidden=_ints(hidden, "hidden"),
                       channels=_ints(channels, "channels"), activation=activation, likelihood=likelihood,
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
    from . import workflows

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
    from . import workflows

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
    from . import workflows

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
    from .demo import run_demo

    index = run_demo(out, epochs=epochs, seed=seed, progress=progress)
    typer.echo(f"report: {index}")


anomaly_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Anomaly detection on tables: fit a detector, score new rows.")
app.add_typer(anomaly_app, name="anomaly")
IGNORE_FILE = "cli.json"


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _column_kinds(categorical: str, binary: str, continuous: str) -> dict[str, str]:
    """--categorical/--binary/--continuous column lists → {column: kind}; a column may have one kind only."""
    lists = {"categorical": _names(categorical), "binary": _names(binary), "continuous": _names(continuous)}
    listed = [c for cols in lists.values() for c in cols]
    twice = sorted({c for c in listed if listed.count(c) > 1})
    if twice:
        raise VaekitError(f"column(s) {twice} given more than one kind (--categorical/--binary/--continuous)")
    return {c: kind for kind, cols in lists.items() for c in cols}


@anomaly_app.command("fit")
def anomaly_fit(
    train: Path = typer.Argument(..., help="Training table (.csv or .parquet); unlabelled rows."),
    out: Path = typer.Option(..., "--out", help="Model folder for the fitted detector."),
    contamination: str = typer.Option("0.1", help="Expected outlier fraction in (0, 0.5], or 'auto' (median + 3 robust sd)."),
    score: str = typer.Option("nll", help="nll | elbo | recon_prob | recon_error."),
    k: int = typer.Option(16, "--k", help="Latent samples per row for the score."),
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
    unknown: str = typer.Option("error", help="Unseen categories when scoring: error | missing."),
    seed: int = typer.Option(0),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a detector already in --out."),
) -> None:
    """Fit a VAE anomaly detector on a table; writes the model folder and a histogram of the training scores."""
    from .anomaly import VAEAnomalyDetector
    from .anomaly_io import DETECTOR_FILE
    from .data.tabular import read_table
    from .io import atomic_write_text
    from .plots import save_histogram

    if (out / DETECTOR_FILE).exists() and not overwrite:
        raise VaekitError(f"{out}: already holds a detector; pass --overwrite or choose another --out")
    df = read_table(train)
    drop = _names(ignore)
    missing = [c for c in drop if c not in df.columns]
    if missing:
        raise VaekitError(f"{train}: --ignore names column(s) {missing} that the table does not have")
    df = df.drop(columns=drop)
    kinds = _column_kinds(categorical, binary, continuous)
    try:
        cont: float | str = contamination if contamination == "auto" else float(contamination)
    except ValueError:
        raise VaekitError(f"--contamination must be a number or 'auto', got {contamination!r}") from None
    det = VAEAnomalyDetector(score_type=score, k=k, contamination=cont, latent_dim=latent_dim, hidden=_ints(hidden, "hidden"),
                             max_steps=max_steps, n_models=n_models, column_transform=transform, column_kinds=kinds or None,
                             allow_missing=allow_missing, unknown_category=unknown, random_state=seed)
    det.fit(df)
    det.save(out)
    atomic_write_text(out / IGNORE_FILE, json.dumps({"ignore": drop}))
    save_histogram(out / "train_scores.png", {"training": det.decision_scores_}, det.threshold_,
                   title=f"training scores ({score}); {int(det.labels_.sum())} of {len(df)} above the threshold")
    kinds_txt = ", ".join(f"{c.name}:{c.kind}" for c in det.schema_.columns) if det.schema_ is not None else ""
    typer.echo(f"fitted on {len(df)} rows ({kinds_txt}); threshold {det.threshold_:.4g}, "
               f"{int(det.labels_.sum())} training rows flagged; detector in {out}")


@anomaly_app.command("score")
def anomaly_score(
    model_dir: Path = typer.Argument(..., help="Detector folder written by 'vaekit anomaly fit'."),
    data: Path = typer.Argument(..., help="Table to score (.csv or .parquet), read in chunks."),
    out: Path = typer.Option(..., "--out", help="Output .csv or .parquet: score, label, top_columns."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Histogram PNG (default: OUT with .png)."),
    no_plot: bool = typer.Option(False, "--no-plot", help="Do not write the histogram."),
    chunksize: int = typer.Option(50_000, "--chunksize", help="Rows per chunk (bounds memory)."),
    id_column: Optional[str] = typer.Option(None, "--id-column", help="Column copied to the output, not scored."),
    top: int = typer.Option(3, "--top", help="Top contributing columns listed per row."),
) -> None:
    """Score a table in chunks: anomaly score (higher = more abnormal), label (1 = outlier), top columns."""
    from .anomaly_io import load_detector, score_file

    det = load_detector(model_dir)
    cli_file = model_dir / IGNORE_FILE
    ignore = json.loads(cli_file.read_text()).get("ignore", []) if cli_file.is_file() else []
    res = score_file(det, data, out, chunksize, id_column, top, None if no_plot else (plot or out.with_suffix(".png")),
                     drop=[c for c in ignore if c != id_column])
    typer.echo(f"scored {res['rows']} rows in {res['seconds']:.1f} s ({res['rows_per_second']:.0f} rows/s); "
               f"{res['outliers']} above the threshold {res['threshold']:.4g}; scores in {res['out']}"
               + (f"; histogram {res['plot']}" if res["plot"] else ""))


from .cli_explore import register as _register_explore  # noqa: E402

_register_explore(app)
from .cli_compress import register as _register_compress  # noqa: E402

_register_compress(app)
from .cli_generate import register as _register_generate  # noqa: E402

_register_generate(app)
from .cli_codec import register as _register_codec  # noqa: E402

_register_codec(app)


# --- imputation and inpainting (issue 4) -----------------------------------------------------------------------------
@app.command()
def impute(
    data: Path = typer.Argument(..., help="Table with missing values (.csv or .parquet); empty cells / NaN are missing."),
    out: Path = typer.Option(..., "--out", help="Completed table (.csv or .parquet)."),
    multiple: int = typer.Option(0, "--multiple", help="M > 0: M imputations in ONE long table, a first column "
                                 "'imputation' (1..M) followed by the M completed copies stacked in order."),
    uncertainty: Optional[Path] = typer.Option(None, "--uncertainty", help="Also write per-entry uncertainty here "
                                               "(sd of draws for numbers, 1 − p(imputed value) otherwise; 0 = observed)."),
    na_values: str = typer.Option("", "--na-values", help="Extra strings meaning missing, comma-separated (e.g. '?,n/a')."),
    ignore: str = typer.Option("", help="Columns copied through untouched and not used (IDs, labels)."),
    categorical: str = typer.Option("", help="Columns to treat as categorical (comma-separated)."),
    binary: str = typer.Option("", help="Columns to treat as binary."),
    continuous: str = typer.Option("", help="Columns to treat as continuous."),
    n_samples: int = typer.Option(1000, "--n-samples", help="Importance samples L per row."),
    max_steps: int = typer.Option(10000, "--max-steps", help="Training steps (VAEImputer's default; fewer = faster, "
                                  "slightly less accurate)."),
    seed: int = typer.Option(0),
) -> None:
    """Fill the missing values of a table with a VAE trained on it (MIWAE): conditional means / most probable values."""
    from .impute_io import impute_file

    kinds = _column_kinds(categorical, binary, continuous)
    res = impute_file(data, out, multiple, uncertainty, _names(ignore), _names(na_values), kinds,
                      n_samples=n_samples, max_steps=max_steps, random_state=seed)
    what = f"{multiple} imputations (long format, column 'imputation')" if multiple else "completed table"
    typer.echo(f"imputed {res['missing']} missing value(s) in {res['rows']} rows × {res['columns']} columns in "
               f"{res['seconds']:.1f} s; {what} in {out}" + (f"; uncertainty in {uncertainty}" if uncertainty else ""))


@app.command()
def inpaint(
    model_dir: Path = typer.Argument(..., help="Image model folder (or run folder) from 'vaekit train'."),
    image: Path = typer.Argument(..., help="Image to complete (PNG; the model's size and channels)."),
    mask: Path = typer.Option(..., "--mask", help="PNG of the same size: white (>= 128) = pixels to fill."),
    out: Path = typer.Option(..., "--out", help="Output PNG; unmasked pixels are copied unchanged."),
    n_samples: int = typer.Option(1000, "--n-samples", help="Importance samples L."),
    rounds: int = typer.Option(2, min=0, help="Proposal refinements (re-encode the completed image)."),
    seed: int = typer.Option(0),
) -> None:
    """Fill masked pixels with E[x_mis | x_obs] under a trained image VAE (importance-weighted, masked likelihood)."""
    from .conditional import inpaint_file

    res = inpaint_file(model_dir, image, mask, out, n_samples, rounds, seed)
    typer.echo(f"filled {res['filled_pixels']} of {res['pixels']} pixels (effective sample size {res['ess']:.1f} "
               f"of {n_samples}); wrote {out}")


OUTPUT_OPTIONS = ("-o", "--out", "--plot", "--uncertainty")


def _paths(argv: list[str]) -> tuple[list[str], list[str]]:
    """(values of output options, every other non-option token and option value) of a command line."""
    outs: list[str] = []
    ins: list[str] = []
    i = 0
    while i < len(argv):
        name, eq, val = argv[i].partition("=")
        if name in OUTPUT_OPTIONS:
            if eq:
                outs.append(val)
            elif i + 1 < len(argv):
                outs.append(argv[i + 1])
                i += 1
        elif not argv[i].startswith("-"):
            ins.append(argv[i])
        elif eq and name.startswith("--"):
            ins.append(val)
        i += 1
    return outs, ins


def _guard_outputs(argv: list[str]) -> None:
    """Nothing the user gave us is overwritten: existing input paths become write-protected for this command, and two
    outputs may not name the same file."""
    from .io import protect_inputs

    outs, ins = _paths(argv)
    seen: set[Path] = set()
    for o in outs:
        r = Path(o).resolve()
        if r in seen:
            raise VaekitError(f"{o}: named for two outputs of this command; give each output its own path")
        seen.add(r)
    protect_inputs(p for p in ins if p and Path(p).exists())


def main(argv: list[str] | None = None) -> None:
    """Entry point: VaekitError and file errors become one line on stderr and exit code 2."""
    from .io import release_inputs

    try:
        _guard_outputs(list(sys.argv[1:] if argv is None else argv))
        app(args=argv, standalone_mode=True)
    except VaekitError as e:
        typer.echo(f"error: {e}", err=True)
        raise SystemExit(2) from None
    except OSError as e:  # missing, unreadable, existing or wrong-kind paths
        typer.echo(f"error: {f'{e.filename}: ' if e.filename else ''}{e.strerror or e}", err=True)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise SystemExit(130) from None
    finally:
        release_inputs()


if __name__ == "__main__":
    main()
