"""``vaekit explore``: a local page with latent sliders, prior sampling and interpolation between examples.

A thin FastAPI layer over :mod:`vaekit.jobs.explore.latent`; the page is plain HTML/JS served from this package (no CDN;
no /docs, /redoc or /openapi.json either). Every request must name an allowed host in its Host header (loopback names,
plus the address given to ``--host``), so that a page elsewhere that rebinds its DNS name to 127.0.0.1 cannot read the
examples; request bodies over MAX_BODY bytes are refused with 413 before they are read; seeds are 0..2^63−1.
"""

import base64
import io
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from vaekit.core.model import VAE
from vaekit.core.workflows import image_shape, load, prepare_for_model, to_display
from vaekit.data import load_array
from vaekit.errors import VaekitError
from vaekit.jobs.explore import latent as explore
from vaekit.plots import grid, to_images
from vaekit.web import HostBodyGuard as _Guard
from vaekit.web import (  # noqa: F401 -- re-exported: the explorer's CLI and tests import them from here
    LOOPBACK_HOSTS,
    WILDCARD_HOSTS,
    allowed_hosts,
    host_name,
    validation_errors,
)

PAGE = Path(__file__).with_name("explorer.html")
MAX_STEPS = 32
MAX_THUMBNAILS = 100  # example pictures per /api/thumbnails request
MAX_MAP_POINTS = 2000  # examples drawn on the latent map
MAX_BODY = 1 << 20  # bytes of one request body (a decode request of 4096 values is < 100 kB)
MAX_SEED = 2**63 - 1


def _png(model: VAE, x: torch.Tensor, shape: tuple[int, ...], scale: int, ncol: int | None = None) -> str:
    from PIL import Image


    img = grid(to_images(to_display(model, x), shape), ncol=ncol or len(x), pad=1 if len(x) > 1 else 0,
               scale=scale)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def create_app(model: VAE, examples: torch.Tensor | None = None, labels: np.ndarray | None = None,
               scale: int = 0, hosts: Iterable[str] = LOOPBACK_HOSTS, max_body: int = MAX_BODY) -> Any:
    """FastAPI app: GET / (page), /api/info, POST /api/decode, /api/sample, /api/example/{i}, /api/interpolate,
    /api/thumbnails (example pictures, paged), /api/latent (KL per dimension, slider order, the 2-D map); only for
    requests whose Host header is one of ``hosts`` (names as :func:`allowed_hosts` gives them)."""
    from fastapi import FastAPI, HTTPException, Query
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from pydantic import BaseModel, Field


    shape = image_shape(model)
    side = shape[-1]
    scale = scale or max(1, 224 // max(side, 1))
    d = model.config.latent_dim
    app = FastAPI(title="vaekit explorer", docs_url=None, redoc_url=None, openapi_url=None)  # no CDN-loaded pages
    app.add_middleware(_Guard, hosts=hosts, max_body=max_body)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Any, exc: RequestValidationError) -> Any:
        return JSONResponse(status_code=422, content={"detail": validation_errors(exc.errors())})

    class DecodeRequest(BaseModel):
        z: list[float] = Field(..., min_length=1, max_length=4096)
        label: int | None = None

    class InterpolateRequest(BaseModel):
        a: int
        b: int
        steps: int = Field(8, ge=2, le=MAX_STEPS)
        method: str = "slerp"
        label: int | None = None

    def cond(label: int | None, n: int) -> torch.Tensor | None:
        if not model.config.n_conditions:
            return None
        lab = 0 if label is None else label
        if not 0 <= lab < model.config.n_conditions:
            raise HTTPException(422, f"label must be in 0..{model.config.n_conditions - 1}")
        return torch.full((n,), lab, dtype=torch.long)

    def example(i: int) -> torch.Tensor:
        if examples is None:
            raise HTTPException(404, "no examples loaded (start with --data)")
        if not 0 <= i < len(examples):
            raise HTTPException(404, f"example index must be in 0..{len(examples) - 1}")
        return examples[i:i + 1]

    def example_conditions(i: int, n: int) -> torch.Tensor | None:
        return None if labels is None or not model.config.n_conditions else torch.as_tensor(labels[i:i + n])

    summary: dict[str, Any] = {}

    def overview() -> dict[str, Any]:  # computed on first use: encoding every example takes a moment
        if not summary:
            x = None if examples is None else examples[:MAX_MAP_POINTS]
            summary.update(explore.overview(model, x, None if x is None else example_conditions(0, len(x)),
                                            MAX_MAP_POINTS))
        return summary

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return {"latent_dim": d, "image_shape": list(shape), "n_conditions": model.config.n_conditions,
                "n_examples": 0 if examples is None else len(examples), "likelihood": model.config.likelihood}

    @app.post("/api/decode")
    def decode(req: DecodeRequest) -> dict[str, Any]:
        if len(req.z) != d:
            raise HTTPException(422, f"z must have {d} values, got {len(req.z)}")
        z = torch.tensor([req.z], dtype=torch.float32)
        if not torch.isfinite(z).all():
            raise HTTPException(422, "z must be finite")
        return {"image": _png(model, explore.decode(model, z, cond(req.label, 1)), shape, scale)}

    @app.get("/api/sample")
    def sample(seed: int = Query(0, ge=0, le=MAX_SEED), temperature: float = 1.0,
               label: int | None = None) -> dict[str, Any]:
        if not 0 < temperature <= 10:
            raise HTTPException(422, "temperature must be in (0, 10]")
        z = model.prior.sample(1, torch.Generator().manual_seed(seed), temperature)
        return {"z": z[0].tolist(), "image": _png(model, explore.decode(model, z, cond(label, 1)), shape, scale)}

    @app.get("/api/example/{i}")
    def get_example(i: int) -> dict[str, Any]:
        x = example(i)
        z = explore.encode(model, x, example_conditions(i, 1))
        lab = None if labels is None else int(labels[i])
        return {"z": z[0].tolist(), "label": lab, "image": _png(model, x, shape, scale)}

    @app.get("/api/thumbnails")
    def thumbnails(start: int = Query(0, ge=0, le=MAX_SEED),
                   count: int = Query(48, ge=1, le=MAX_THUMBNAILS)) -> dict[str, Any]:
        example(start)  # 404 without examples or past the last one
        assert examples is not None
        stop = min(start + count, len(examples))
        thumb = max(1, 48 // max(side, 1))
        return {"start": start, "total": len(examples),
                "images": [_png(model, examples[i:i + 1], shape, thumb) for i in range(start, stop)],
                "labels": None if labels is None else [int(v) for v in labels[start:stop]]}

    @app.get("/api/latent")
    def latent() -> dict[str, Any]:
        o = overview()
        lab = None if labels is None or o["map"] is None else [int(v) for v in labels[:len(o["map"]["points"])]]
        return {**o, "labels": lab}

    @app.post("/api/interpolate")
    def interp(req: InterpolateRequest) -> dict[str, Any]:
        if req.method not in ("slerp", "linear"):
            raise HTTPException(422, "method must be slerp or linear")
        c = cond(req.label, 1)
        path = explore.interpolate(model, example(req.a), example(req.b), req.steps, req.method, c)
        return {"image": _png(model, path, shape, max(1, scale // 2), ncol=req.steps)}

    return app


def serve(model_dir: str | Path, data: str | Path | None = None, host: str = "127.0.0.1", port: int = 8000,
          limit: int = 1000) -> None:
    """Load a model (and optionally examples) and serve the explorer with uvicorn until interrupted."""
    try:
        import uvicorn
    except ImportError:
        raise VaekitError("the explorer needs the serve extra: pip install 'vaekit[serve]'") from None

    model, extra = load(model_dir)
    examples = labels = None
    if data is not None:
        ds = load_array(data, "test" if Path(data).suffix == ".npz" else None)
        examples, c = prepare_for_model(model, extra, ds)
        examples = examples[:limit]
        labels = None if ds.y is None else np.asarray(ds.y)[:limit]
    uvicorn.run(create_app(model, examples, labels, hosts=allowed_hosts(host)), host=host, port=port,
                log_level="warning")
