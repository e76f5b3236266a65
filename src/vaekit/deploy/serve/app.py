"""The FastAPI app of ``vaekit serve`` and the uvicorn runner.

Routes: GET /health (no API key needed), GET /models, GET /models/{name}, GET /stats (micro-batching counts),
GET /openapi.json, and POST /models/{name}/{endpoint} for each loaded artifact's endpoints
(:mod:`vaekit.deploy.serve.artifacts`). Answers: 200; 400 a Host header outside the allow-list; 401 a missing or
wrong API key; 404 an unknown model or endpoint; 413 a body over --max-body bytes or a request over --max-rows rows;
422 a request the model cannot take (shape, dtype, range, unknown column, corrupt file: one line in "detail");
503 while shutting down. No /docs or /redoc page: they would load JavaScript from a CDN.
"""
from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from vaekit import __version__
from vaekit.deploy.serve.artifacts import Artifact, load_all
from vaekit.deploy.serve.batching import MicroBatcher, ServiceClosing
from vaekit.deploy.serve.ops import Op, RequestTooLarge
from vaekit.deploy.serve.security import (
    AccessLog,
    APIKeyGuard,
    json_logger,
    read_api_key,
)
from vaekit.errors import VaekitError
from vaekit.web import HostBodyGuard, allowed_hosts, validation_errors

ENV_CONFIG = "VAEKIT_SERVE_CONFIG"  # how the parent process hands the settings to --workers N processes
log = logging.getLogger("vaekit.serve")


@dataclass
class Settings:
    """Everything ``vaekit serve`` takes besides the folders (the CLI's options, with the same names)."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_body: int = 8 << 20
    max_rows: int = 1024
    max_batch_rows: int = 256
    batch_wait_ms: float = 2.0
    batching: bool = True
    api_key_file: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    allow_hosts: list[str] = field(default_factory=list)
    device: str = "cpu"
    threads: int | None = None

    def check(self) -> Settings:
        """One-line VaekitError for an option out of range."""
        if not 1 <= self.workers <= 64:
            raise VaekitError(f"--workers must be in 1..64, got {self.workers}")
        if not 1 <= self.max_rows <= 1_000_000 or not 1 <= self.max_batch_rows <= 1_000_000:
            raise VaekitError("--max-rows and --max-batch-rows must be in 1..1000000")
        if not 1024 <= self.max_body <= 1 << 30:
            raise VaekitError(f"--max-body must be in 1024..{1 << 30} bytes, got {self.max_body}")
        if not 0 <= self.batch_wait_ms <= 1000:
            raise VaekitError(f"--batch-wait-ms must be in 0..1000, got {self.batch_wait_ms}")
        if not 0 <= self.port <= 65535:
            raise VaekitError(f"--port must be in 0..65535, got {self.port}")
        bad = [o for o in self.cors_origins if o != "*" and not o.startswith(("http://", "https://"))]
        if bad:
            raise VaekitError(f"--cors-origin {bad[0]!r}: an origin is http(s)://host[:port] (or *)")
        return self


def _answer_error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": " ".join(detail.split())[:1000]}, status_code=status)


def _docs(op: Op) -> dict[str, Any]:
    """The OpenAPI pieces of one op: its raw request body (if any) and its answers with examples."""
    ok: dict[str, Any] = {"description": op.summary, "content": {op.response: (
        {"example": op.example} if op.example is not None else {"schema": {"type": "string", "format": "binary"}})}}
    if op.response == "application/json" and op.name in ("decode", "sample", "reconstruct"):
        ok["content"]["image/png"] = {"schema": {"type": "string", "format": "binary"}}
    err = {"content": {"application/json": {"example": {"detail": "one line naming the problem"}}}}
    out: dict[str, Any] = {"responses": {200: ok, 413: {"description": "body or rows over the limit", **err},
                                         422: {"description": "a request the model cannot take", **err}}}
    schema = ({"type": "string", "format": "binary"} if isinstance(op.body, str)
              else {"$ref": f"#/components/schemas/{op.body.__name__}"})  # the model's schema: create_app adds it
    out["openapi_extra"] = {"requestBody": {"required": True, "content": {
        op.body if isinstance(op.body, str) else "application/json": {"schema": schema}}}}
    return out


def _handler(app: FastAPI, art: Artifact, op: Op) -> Callable[..., Any]:
    """The route function of one op; its signature tells FastAPI the body model (or the query parameters)."""
    key = f"{art.name}/{op.name}"

    async def run(prepare: Callable[[], Any]) -> Any:
        try:
            work = prepare()
            result = await app.state.batcher.run(key, op.compute, work, op.batched)
            return op.render(work, result)
        except RequestTooLarge as e:
            return _answer_error(413, str(e))
        except VaekitError as e:
            return _answer_error(422, str(e))
        except ServiceClosing as e:
            return _answer_error(503, str(e))
        except (ValueError, TypeError, OverflowError) as e:
            log.warning("%s: %s: %s", key, type(e).__name__, e)  # input a job's checks let through: still 4xx
            return _answer_error(422, f"{type(e).__name__}: {e}")

    if isinstance(op.body, str):
        async def raw(request: Request, **query: Any) -> Any:
            body = await request.body()
            return await run(lambda: op.prepare(body, **query))

        params = [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)]
        params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=q, annotation=t)
                   for n, (t, q) in op.query.items()]
        raw.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        return raw

    async def handle(request: Request) -> Any:
        try:  # JSON parsed and checked in one pass by pydantic-core (2-3x faster than json.loads + validation)
            body = op.body.model_validate_json(await request.body())
        except ValidationError as e:
            return JSONResponse(status_code=422, content={"detail": validation_errors(e.errors())})
        return await run(lambda: op.prepare(body))

    return handle


def create_app(artifacts: Sequence[Artifact], settings: Settings | None = None,
               hosts: frozenset[str] | None = None, api_key: bytes | None = None,
               access_log: Callable[[dict[str, Any]], None] | None = None) -> FastAPI:
    """The app serving ``artifacts``; ``hosts`` (default: those ``settings.host`` allows) are the Host-header
    names it answers, ``api_key`` (default: read from ``settings.api_key_file``) the X-API-Key every request but
    /health needs, ``access_log`` where the per-request records go (default: JSON lines on stderr)."""
    s = (settings or Settings()).check()
    if api_key is None and s.api_key_file:
        api_key = read_api_key(s.api_key_file)
    by_name = {a.name: a for a in artifacts}

    def batcher() -> MicroBatcher:
        return MicroBatcher(s.max_batch_rows, s.batch_wait_ms / 1000.0, s.batching)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.batcher.closed:
            app.state.batcher = batcher()
        yield
        await app.state.batcher.close()  # after uvicorn has answered the requests in flight: drain the lanes

    app = FastAPI(title="vaekit serve", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Endpoints of the loaded vaekit models; every error is 4xx with one line in 'detail'.")
    app.state.batcher = batcher()

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Any, exc: RequestValidationError) -> Any:
        return JSONResponse(status_code=422, content={"detail": validation_errors(exc.errors())})

    def describe(a: Artifact) -> dict[str, Any]:
        return {"name": a.name, "kind": a.kind, "endpoints": [f"/models/{a.name}/{o.name}" for o in a.ops], **a.facts}

    @app.get("/health", summary="liveness: 200 while the service runs (no API key needed)")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": len(by_name), "version": __version__}

    @app.get("/models", summary="the loaded models, their kinds, facts and endpoints")
    async def models() -> dict[str, Any]:
        return {"models": [describe(a) for a in artifacts]}

    @app.get("/models/{name}", summary="one loaded model")
    async def model(name: str) -> dict[str, Any]:
        if name not in by_name:
            raise HTTPException(404, f"no model named {name[:64]!r}; loaded: {sorted(by_name)}")
        return describe(by_name[name])

    @app.get("/stats", summary="micro-batching: requests answered and compute passes run, per endpoint")
    async def stats() -> dict[str, Any]:
        return asdict(app.state.batcher.stats)

    for art in artifacts:
        for op in art.ops:
            app.post(f"/models/{art.name}/{op.name}", summary=op.summary, tags=[art.name],
                     name=f"{art.name}_{op.name}", **_docs(op))(_handler(app, art, op))

    base_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document plus the request models (read by the handlers themselves) and the API key."""
        spec = base_openapi()
        comps = spec.setdefault("components", {})
        for a in artifacts:
            for o in a.ops:
                if not isinstance(o.body, str):
                    comps.setdefault("schemas", {})[o.body.__name__] = o.body.model_json_schema(
                        ref_template="#/components/schemas/{model}")
        if api_key is not None:
            comps["securitySchemes"] = {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
            spec["security"] = [{"apiKey": []}]
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
    if api_key is not None:
        app.add_middleware(APIKeyGuard, key=api_key)
    if s.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=s.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type", "X-API-Key"])
    app.add_middleware(HostBodyGuard, hosts=hosts if hosts is not None else allowed_hosts(s.host, s.allow_hosts),
                       max_body=s.max_body, service="vaekit serve", json=True)
    app.add_middleware(AccessLog, sink=access_log or json_logger())
    return app


def _threads(artifacts: Sequence[Artifact], settings: Settings) -> None:
    """PyTorch threads of this process: --threads, else the runtime's rule for the largest model."""
    import torch

    from vaekit.runtime import resolve_threads

    torch.set_num_threads(resolve_threads(settings.threads, max((a.n_params for a in artifacts), default=0)))


def app_from_env() -> FastAPI:
    """The app of one ``--workers N`` process: the folders and settings the parent put in VAEKIT_SERVE_CONFIG."""
    cfg = json.loads(os.environ[ENV_CONFIG])
    settings = Settings(**cfg["settings"])
    artifacts = load_all(cfg["specs"], settings.max_rows, settings.device, settings.threads)
    _threads(artifacts, settings)
    return create_app(artifacts, settings)


def serve(specs: Sequence[str], settings: Settings, announce: Callable[[list[str]], None] | None = None) -> None:
    """Load every folder (errors before anything listens; ``announce`` gets the model names then), and serve with
    uvicorn until SIGINT/SIGTERM (which stop new connections, answer the requests in flight, drain the batcher)."""
    try:
        import uvicorn
    except ImportError:
        raise VaekitError("vaekit serve needs the serve extra: pip install 'vaekit[serve]'") from None
    settings.check()
    if settings.api_key_file:
        read_api_key(settings.api_key_file)
    artifacts = load_all(specs, settings.max_rows, settings.device, settings.threads)
    if announce is not None:
        announce([a.name for a in artifacts])
    run = {"host": settings.host, "port": settings.port, "log_level": "warning", "access_log": False,
           "timeout_graceful_shutdown": 30}
    if settings.workers == 1:
        _threads(artifacts, settings)
        uvicorn.run(create_app(artifacts, settings), **run)
        return
    del artifacts  # each worker loads its own copy
    os.environ[ENV_CONFIG] = json.dumps({"specs": list(specs), "settings": asdict(settings)})
    uvicorn.run("vaekit.deploy.serve.app:app_from_env", factory=True, workers=settings.workers, **run)

