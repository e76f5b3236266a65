"""What every vaekit HTTP service shares (``vaekit explore``, ``vaekit serve``): the Host-header allow-list, the
request-body limit and a 422 answer that never echoes the bad input.

A service answers only requests whose Host header names an allowed host (the loopback names, plus the address it
listens on), so that a page elsewhere that rebinds its DNS name to 127.0.0.1 cannot read from it; a body over the
limit is refused with 413, by its Content-Length before anything is read, or while a chunked body is read. Plain ASGI
(no FastAPI import here): the layers above add it with ``app.add_middleware(HostBodyGuard, …)``.
"""
from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

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


def allowed_hosts(host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """Host-header names a service listening on ``host`` answers: the loopback names, ``host`` itself and ``extra``
    (e.g. a public DNS name); for a wildcard address (0.0.0.0, ::) also this machine's name and addresses (best
    effort)."""
    names = set(LOOPBACK_HOSTS) | {host_name(h) for h in extra if host_name(h)}
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


async def refuse(send: Any, status: int, text: str, content_type: bytes = b"text/plain; charset=utf-8") -> None:
    """Answer an ASGI HTTP request at once (status, one short body) and close the connection."""
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class HostBodyGuard:
    """ASGI middleware: refuse a Host header outside ``hosts`` (400) and a body over ``max_body`` bytes (413).
    ``service`` names the service in the 400 message; ``json`` answers {"detail": …} instead of plain text."""

    def __init__(self, app: Any, hosts: Iterable[str], max_body: int, service: str = "the explorer",
                 json: bool = False) -> None:
        self.app, self.hosts, self.max_body, self.service, self.json = app, frozenset(hosts), max_body, service, json

    async def _refuse(self, send: Any, status: int, text: str) -> None:
        if self.json:
            import json

            return await refuse(send, status, json.dumps({"detail": text}), b"application/json")
        return await refuse(send, status, text)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        host = host_name(headers.get(b"host", b"").decode("latin-1"))
        if host not in self.hosts:
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            return await self._refuse(send, 400, f"invalid Host header: {self.service} answers only "
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


def validation_errors(errors: Iterable[dict[str, Any]]) -> list[dict[str, str | list[str]]]:
    """FastAPI's request-validation errors without the inputs they echo (NaN, inf or undecodable bytes there made
    the reply itself fail with 500): where and what only."""
    return [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in errors]
