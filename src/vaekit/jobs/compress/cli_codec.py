"""``vaekit codec train``: train a lossy learned image codec (one RD-VAE per λ) into a codec folder."""
from __future__ import annotations

from pathlib import Path

import typer

from vaekit.errors import VaekitError
from vaekit.options import floats


def _lambdas(text: str) -> list[float]:
    vals = floats(text, "lambdas")
    if min(vals) <= 0:
        raise VaekitError(f"--lambdas must list positive numbers, got {text!r}")
    return vals


codec_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Lossy learned image codecs for 'vaekit compress'.")


@codec_app.command("train")
def codec_train(
    data: Path = typer.Argument(..., help="Training images: a folder of PNG/JPEG files, or an .npz (x_train/train) "
                                "or .npy of uint8 (n,H,W[,3])."),
    out: Path = typer.Option(..., "--out", help="Codec folder (config.json + model.safetensors)."),
    lambdas: str = typer.Option("400,150,50,15", help="Rate weights λ in D + λ·R, one quality level each "
                                "(larger λ = fewer bits; level 0 = the largest λ)."),
    channels_n: int = typer.Option(64, "--n", help="Filters N of the transforms."),
    latent_m: int = typer.Option(96, "--m", help="Latent channels M."),
    n_down: int = typer.Option(4, "--n-down", help="Stride-2 stages (image sides are padded to 2^n_down)."),
    nonlinearity: str = typer.Option("gdn", help="gdn | relu."),
    steps: int = typer.Option(2000, help="Steps for the first (median λ) level."),
    finetune_steps: int = typer.Option(500, "--finetune-steps", help="Steps for each other level (warm-started)."),
    batch_size: int = typer.Option(8, "--batch-size"),
    crop: int = typer.Option(128, help="Random crop side (rounded down to a multiple of 2^n_down)."),
    lr: float = typer.Option(1e-3),
    seed: int = typer.Option(0),
    time_limit: float = typer.Option(0.0, "--time-limit", help="Stop training after this many minutes (0 = none)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into an --out that already holds a codec, "
                                   "another vaekit artifact or other files (see README, 'Command line')."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Train a lossy image codec; use it with 'vaekit compress IMAGE --model OUT --quality Q'."""
    from vaekit.jobs.compress.lossy_train import train_codec

    codec = train_codec(data, out, _lambdas(lambdas), N=channels_n, M=latent_m, n_down=n_down, nonlinearity=nonlinearity,
                        steps=steps, finetune_steps=finetune_steps, batch_size=batch_size, crop=crop, lr=lr, seed=seed,
                        time_limit_min=time_limit, log=(lambda m: typer.echo(m, err=True)) if progress else None,
                        overwrite=overwrite)
    levels = ", ".join(f"q{q}: λ={lm:g} ~{codec.info[q]['train']['bpp']:.3f} bpp"
                       for q, lm in enumerate(codec.lambdas))
    typer.echo(f"trained {len(codec.lambdas)} quality level(s) ({levels}); codec in {out}")
