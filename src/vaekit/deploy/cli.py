"""``vaekit export MODEL_DIR --format onnx|torchscript --out DIR``: a thin layer over :func:`vaekit.deploy.export.export`."""
from __future__ import annotations

from pathlib import Path

import typer

from vaekit.deploy.export import export as export_model

app = typer.Typer(rich_markup_mode=None, help="Export a model or an anomaly detector as ONNX or TorchScript graphs.")


@app.command("export")
def export(
    model_dir: Path = typer.Argument(..., help="A model folder (config.json), a training run folder (model/) or an "
                                               "anomaly detector folder (detector.json)."),
    fmt: str = typer.Option("onnx", "--format", help="onnx | torchscript."),
    out: Path = typer.Option(..., "--out", help="Folder for the graphs, export.json and README.md."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an export already in --out."),
) -> None:
    """Write encoder/decoder graphs (a VAE) or the score graph (a detector), each checked against PyTorch."""

    doc = export_model(model_dir, out, fmt, overwrite=overwrite)
    for g in doc["graphs"].values():
        c = g["check"]
        typer.echo(f"{g['file']}: max |{c['runtime'].split()[0]} − PyTorch| = {c['max_abs_diff']:.2e}, relative "
                   f"{c['max_scaled_diff']:.2e} (batch sizes {', '.join(map(str, c['batch_sizes']))})")
    if "detector_check" in doc:
        typer.echo(f"score vs the detector's decision_function: max abs diff {doc['detector_check']['max_abs_diff']:.2e}")
    typer.echo(f"exported {doc['kind'].replace('_', ' ')} {model_dir} as {fmt} to {out}")
