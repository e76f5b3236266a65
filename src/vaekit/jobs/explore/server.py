"""``vaekit explore``: a local page with latent sliders, prior sampling and interpolation between examples.

A thin FastAPI layer over :mod:`vaekit.jobs.explore.latent`; the page is plain HTML/JS served from this package (no CDN;
no /docs, /redoc or /openapi.json either). Every request must name an allowed host in its Host header (loopback names,
plus the address given to ``--host``), so that a page elsewhere that rebinds its DNS name to 127.0.0.1 cannot read the
examples; request bodies over MAX_BODY bytes are refused with 413 before they are read; seeds are 0..2^63−1.
"""

import base64
import io
import socket
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

PAGE = Path(__file__).with_name("explorer.html")
MAX_STEPS = 32
MAX_BODY = 1 << 20  # bytes of one request body (a decode request of 4096 values is < 100 kB)
MAX_SEED = 2**63 - 1
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]", ""})


def host_name(value: str) -> str:
    """The host of a Host header or address, lower-case, without the port; IPv6 addresses in brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[:value.find("]") + 1] if "]" in value else value
    if value.count(":") > 1:  # a bare IPv6 address (--host ::1)
        return f"[{value}]"
    return value.partition(":")[0]


def allowed_hosts(host: str) -> frozenset[str]:
    """Host-header names the explorer answers when it listens on ``host``: the loopback names and ``host`` itself;
    for a wildcard address (0.0.0.0, ::) also this machine's name and addresses (best effort)."""
    names = set(LOOPBACK_HOSTS)
    if host_name(host) not in WILDCARD_HOSTS:
        names.add(host_name(host))
        return frozenset(names)
    try:
        name = socket.gethostname()
        fqdn, aliases, addresses = socket.gethostbyname_ex(name)
        names.update(host_name(n) for n in (name, fqdn, *aliases, *addresses) if n)
    except OSError:
        pass
    return frozenset(names)


class _Guard:
    """ASGI middleware: refuse a Host header outside ``hosts`` (400) and a body over ``max_body`` bytes (413, by
    Content-Length before anything is read, or while a chunked body is read)."""

    def __init__(self, app: Any, hosts: Iterable[str], max_body: int) -> None:
        self.app, self.hosts, self.max_body = app, frozenset(hosts), max_body

    @staticmethod
    async def _refuse(send: Any, status: int, text: str) -> None:
        body = text.encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        host = host_name(headers.get(b"host", b"").decode("latin-1"))
        if host not in self.hosts:
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            return await self._refuse(send, 400, "invalid Host header: the explorer answers only "
                                      + ", ".join(sorted(self.hosts)))
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                return await self._refuse(send, 400, "invalid Content-Length header")
            if too_big:
                return await self._refuse(send, 413, f"request body over {self.max_body} bytes")
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            if message.get("type") == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    from starlette.exceptions import HTTPException

                    raise HTTPException(413, f"request body over {self.max_body} bytes")
            return message

        await self.app(scope, limited, send)


def _png(model: VAE, x: torch.Tensor, shape: tuple[int, ...], scale: int, ncol: int | None = None) -> str:
    from PIL import Image


    img = grid(to_images(to_display(model, x), shape), ncol=ncol or len(x), pad=1 if len(x) > 1 else 0,
               scale=scale)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def create_app(model: VAE, examples: torch.Tensor | None = None, labels: np.ndarray | None = None,
               scale: int = 0, hosts: Iterable[str] = LOOPBACK_HOSTS, max_body: int = MAX_BODY) -> Any:
    """FastAPI app: GET / (page), /api/info, POST /api/decode, /api/sample, /api/example/{i}, /api/interpolate;
    only for requests whose Host header is one of ``hosts`` (names as :func:`allowed_hosts` gives them)."""
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
        # FastAPI's own handler echoes each bad input back, and NaN, inf or undecodable bytes in it made that
        # reply fail (500): answer 422 with where and what only
        detail = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
                   "type": str(e.get("type", ""))} for e in exc.errors()]
        return JSONResponse(status_code=422, content={"detail": detail})

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
        c = None if labels is None or not model.config.n_conditions else torch.as_tensor(labels[i:i + 1])
        z = explore.encode(model, x, c)
        lab = None if labels is None else int(labels[i])
        return {"z": z[0].tolist(), "label": lab, "image": _png(model, x, shape, scale)}

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
