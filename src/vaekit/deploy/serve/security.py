"""The service's guards, as plain ASGI middleware, outermost first: the JSON access log (one object per request),
the Host-header allow-list and body limit (:class:`vaekit.web.HostBodyGuard`, shared with ``vaekit explore``), CORS
(off unless ``--cors-origin`` is given) and the optional API key.

API key: ``--api-key-file FILE`` holds one key (surrounding whitespace ignored, at least MIN_KEY characters); every
request except GET /health must carry it in the ``X-API-Key`` header, compared in constant time
(:func:`hmac.compare_digest`); a missing or wrong key is 401 before the body is read.
"""
from __future__ import annotations

import hmac
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaekit.errors import VaekitError
from vaekit.web import refuse

MIN_KEY = 16
MAX_KEY_FILE = 4096
OPEN_PATHS = frozenset({"/health"})
ACCESS_LOGGER = "vaekit.serve.access"


def read_api_key(path: str | Path) -> bytes:
    """The key in ``path`` (one line); a missing, huge, empty or short key is a one-line VaekitError."""
    p = Path(path)
    if not p.is_file():
        raise VaekitError(f"{p}: --api-key-file not found")
    if p.stat().st_size > MAX_KEY_FILE:
        raise VaekitError(f"{p}: --api-key-file is over {MAX_KEY_FILE} bytes; it holds one key")
    try:
        key = p.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise VaekitError(f"{p}: cannot read the API key ({type(e).__name__})") from None
    if len(key) < MIN_KEY or any(c.isspace() or not c.isprintable() for c in key):
        raise VaekitError(f"{p}: the API key must be one line of at least {MIN_KEY} printable characters without "
                          "spaces (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return key.encode()


class APIKeyGuard:
    """ASGI middleware: 401 unless the X-API-Key header equals ``key`` (constant-time compare)."""

    def __init__(self, app: Any, key: bytes, open_paths: frozenset[str] = OPEN_PATHS) -> None:
        self.app, self.key, self.open_paths = app, key, open_paths

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in self.open_paths:
            return await self.app(scope, receive, send)
        given = next((v for k, v in scope.get("headers", []) if k.lower() == b"x-api-key"), b"")
        if not hmac.compare_digest(given, self.key):
            return await refuse(send, 401, json.dumps({"detail": "missing or wrong API key (header X-API-Key)"}),
                                b"application/json")
        await self.app(scope, receive, send)


def json_logger(stream: Any = None) -> Callable[[dict[str, Any]], None]:
    """A sink writing each access record as one JSON line to ``stream`` (stderr) through the logging module."""
    log = logging.getLogger(ACCESS_LOGGER)
    if not log.handlers:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return lambda record: log.info(json.dumps(record, separators=(",", ":")))


class AccessLog:
    """ASGI middleware: one record per HTTP request, handed to ``sink`` when the answer is sent: time (UTC, ISO),
    method, path, status, duration_ms, bytes (of the answer's body), bytes_in (of the request's body), client."""

    def __init__(self, app: Any, sink: Callable[[dict[str, Any]], None]) -> None:
        self.app, self.sink = app, sink

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        state = {"status": 500, "bytes": 0, "bytes_in": 0}

        async def counting_receive() -> Any:
            message = await receive()
            if message.get("type") == "http.request":
                state["bytes_in"] += len(message.get("body", b""))
            return message

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                state["status"] = int(message["status"])
            elif message["type"] == "http.response.body":
                state["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            client = scope.get("client")
            self.sink({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "method": scope.get("method"),
                       "path": scope.get("path"), "status": state["status"],
                       "duration_ms": round(1000 * (time.perf_counter() - t0), 3), "bytes": state["bytes"],
                       "bytes_in": state["bytes_in"], "client": client[0] if client else None})
