"""``vaekit export MODEL_DIR --format onnx|torchscript --out DIR`` (:func:`vaekit.deploy.export.export`) and
``vaekit serve MODEL_DIR …`` (:func:`vaekit.deploy.serve.app.serve`): thin layers over the deploy API."""
from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(rich_markup_mode=None, help="Deploy: export models as ONNX or TorchScript graphs; serve them over HTTP.")


@app.command("export")
def export(
    model_dir: Path = typer.Argument(..., help="A model folder (config.json), a training run folder (model/) or an "
                                               "anomaly detector folder (detector.json)."),
    fmt: str = typer.Option("onnx", "--format", help="onnx | torchscript."),
    out: Path = typer.Option(..., "--out", help="Folder for the graphs, export.json and README.md."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an export already in --out."),
) -> None:
    """Write encoder/decoder graphs (a VAE) or the score graph (a detector), each checked against PyTorch."""
    from vaekit.deploy.export import export as export_model

    doc = export_model(model_dir, out, fmt, overwrite=overwrite)
    for g in doc["graphs"].values():
        c = g["check"]
        typer.echo(f"{g['file']}: max |{c['runtime'].split()[0]} − PyTorch| = {c['max_abs_diff']:.2e}, relative "
                   f"{c['max_scaled_diff']:.2e} (batch sizes {', '.join(map(str, c['batch_sizes']))})")
    if "detector_check" in doc:
        typer.echo(f"score vs the detector's decision_function: max abs diff {doc['detector_check']['max_abs_diff']:.2e}")
    typer.echo(f"exported {doc['kind'].replace('_', ' ')} {model_dir} as {fmt} to {out}")


@app.command("serve")
def serve(
    model_dirs: list[str] = typer.Argument(..., help="Folders to serve: model or run folders (vaekit train), "
                                                     "detector, imputer, generator or codec folders; NAME=DIR names "
                                                     "one (default: the folder's name) → /models/NAME/…"),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port"),
    workers: int = typer.Option(1, "--workers", help="Processes, each with its own copy of the models."),
    api_key_file: Path | None = typer.Option(None, "--api-key-file", help="File holding the key every request "
                                                "but /health must send in the X-API-Key header."),
    cors_origin: list[str] = typer.Option([], "--cors-origin", help="Allow browser pages from this origin "
                                          "(repeatable; CORS is off without it)."),
    allow_host: list[str] = typer.Option([], "--allow-host", help="Another Host-header name to answer (e.g. the "
                                         "service's DNS name behind a proxy; repeatable)."),
    max_body: int = typer.Option(8 << 20, "--max-body", help="Largest request body in bytes (413 beyond)."),
    max_rows: int = typer.Option(1024, "--max-rows", help="Most rows (items, samples) in one request (413 beyond)."),
    max_batch_rows: int = typer.Option(256, "--max-batch-rows", help="Most rows one micro-batched pass gathers."),
    batch_wait_ms: float = typer.Option(2.0, "--batch-wait-ms", help="How long a pass waits for more requests."),
    batching: bool = typer.Option(True, "--batching/--no-batching", help="Micro-batch concurrent requests."),
    device: str = typer.Option("cpu", "--device", help="auto | cpu | cuda | cuda:N | mps."),
    threads: int = typer.Option(0, "--threads", help="PyTorch threads per process (0 = the runtime's rule)."),
) -> None:
    """Serve the folders over HTTP (JSON; PNG/bytes for images and compressed files) until Ctrl-C or SIGTERM."""
    from vaekit.deploy.serve.app import Settings
    from vaekit.deploy.serve.app import serve as run_service
    from vaekit.web import WILDCARD_HOSTS, host_name

    settings = Settings(host=host, port=port, workers=workers, max_body=max_body, max_rows=max_rows,
                        max_batch_rows=max_batch_rows, batch_wait_ms=batch_wait_ms, batching=batching,
                        api_key_file=None if api_key_file is None else str(api_key_file),
                        cors_origins=list(cors_origin), allow_hosts=list(allow_host), device=device,
                        threads=threads or None).check()
    if host_name(host) in WILDCARD_HOSTS and api_key_file is None:
        typer.echo("warning: listening on every interface without --api-key-file: anyone who can reach this "
                   "machine can call the models", err=True)
    run_service(model_dirs, settings, announce=lambda names: typer.echo(
        f"vaekit serve: {', '.join(names)} on http://{host_name(host)}:{port}/  (GET /models lists the endpoints; "
        "Ctrl-C to stop)", err=True))
