"""Fuzz the latent explorer's HTTP endpoints (``vaekit explore``'s FastAPI app, in-process through fastapi's
TestClient): mutated JSON bodies (fields of other types, extreme sizes, NaN/inf, deep nesting, raw byte damage),
query strings, paths, methods and headers (Host, Content-Type, Content-Length).

A case passes when the app answers with a status below 500 (a refusal is 4xx); a 5xx, an exception escaping the
app, a case over SECONDS_LIMIT or a peak RSS over RSS_LIMIT_MB is a failure.

    python benchmarks/fuzz_explorer.py --cases 3000 --out benchmarks/results/hostile/fuzz_explorer.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

import numpy as np
import torch

from vaekit.core.config import ModelConfig
from vaekit.core.model import VAE
from vaekit.files import atomic_write_text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzz_tally import Tally  # noqa: E402

SECONDS_LIMIT = 2.0
RSS_LIMIT_MB = 1500.0
LATENT = 3


def build_client() -> Any:
    """A tiny conditional image VAE (1×6×6, 3 labels) with 5 examples, served on 127.0.0.1."""
    from fastapi.testclient import TestClient

    from vaekit.jobs.explore.server import create_app

    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=(1, 6, 6), latent_dim=LATENT, hidden=(16,), n_conditions=3)).eval()
    app = create_app(model, torch.rand(5, 36), np.array([0, 1, 2, 0, 1]))
    return TestClient(app, base_url="http://127.0.0.1:8000", raise_server_exceptions=False)


def random_value(rng: np.random.Generator, old: Any) -> Any:
    """A hostile replacement for a JSON value (as Python; NaN/inf written as the non-standard literals)."""
    choices: list[Callable[[], Any]] = [
        lambda: None, lambda: True, lambda: "", lambda: "x", lambda: "A" * int(rng.integers(1, 5000)), lambda: 0,
        lambda: -1, lambda: 1, lambda: 2, lambda: 31, lambda: 32, lambda: 33, lambda: 2**31, lambda: 2**63,
        lambda: -(2**63), lambda: 10**int(rng.integers(6, 400)), lambda: 0.5, lambda: 1e308, lambda: -1e308,
        lambda: 3.4e38, lambda: 5e-324, lambda: float("nan"), lambda: float("inf"), lambda: float("-inf"),
        lambda: [], lambda: {}, lambda: [0.0] * int(rng.integers(1, 6000)), lambda: [float(v) for v in
                                                                                 rng.normal(0, 1e30, LATENT)],
        lambda: {"a": 1}, lambda: [old], lambda: "slerp", lambda: "linear", lambda: "\u0000",
    ]
    if isinstance(old, list) and old:
        choices += [lambda: old[:-1], lambda: old + old[-1:], lambda: [random_value(rng, v) for v in old]]
    return choices[int(rng.integers(len(choices)))]()


def _body(rng: np.random.Generator, base: dict[str, Any]) -> bytes:
    kind = rng.random()
    doc = dict(base)
    if kind < 0.6:
        for _ in range(int(rng.integers(1, 3))):
            key = str(rng.choice(list(doc) + ["extra", "z", "label"]))
            doc[key] = random_value(rng, doc.get(key))
        if rng.random() < 0.1:
            doc.pop(str(rng.choice(list(doc))), None)
    elif kind < 0.7:
        depth = int(rng.choice([10, 100, 1000, 10000, 100000]))
        return ('{"z": ' + "[" * depth + "]" * depth + "}").encode()
    elif kind < 0.8:
        return json.dumps(random_value(rng, doc)).encode()
    raw = bytearray(json.dumps(doc).encode())
    if kind < 0.9:
        for _ in range(int(rng.integers(1, 4))):
            raw[int(rng.integers(len(raw)))] = int(rng.integers(256))
        return bytes(raw)
    if kind < 0.95:
        return bytes(raw[:int(rng.integers(len(raw)))])
    return json.dumps(doc).encode()


def _query_value(rng: np.random.Generator) -> str:
    return str(rng.choice(["0", "1", "-1", "2", "3", "9223372036854775807", "9223372036854775808", "1e400", "nan",
                           "inf", "-inf", "0.0", "10", "10.0001", "1e-320", "", "x", "%00", "1" * 500, "true",
                           "[1]", "0x10"]))


def _headers(rng: np.random.Generator) -> dict[str, str]:
    h: dict[str, str] = {}
    r = rng.random()
    if r < 0.15:
        h["host"] = str(rng.choice(["evil.example", "127.0.0.1.evil", "localhost:1", "[::1]:8000", "LOCALHOST",
                                    "127.0.0.1:", ":80", "", " ", "127.0.0.1:99999999", "[::1", "a" * 300,
                                    "user@127.0.0.1", "127.0.0.2"]))
    if rng.random() < 0.2:
        h["content-type"] = str(rng.choice(["text/plain", "application/json; charset=latin-1", "multipart/form-data",
                                            "application/x-www-form-urlencoded", "", "application/json;;;"]))
    if rng.random() < 0.1:
        h["x-" + "a" * int(rng.integers(1, 50))] = "b" * int(rng.integers(0, 8000))
    return h


def make_request(rng: np.random.Generator) -> dict[str, Any]:
    """One mutated request → keyword arguments of TestClient.request (plus 'what', a description)."""
    target = str(rng.choice(["decode", "decode", "interpolate", "interpolate", "sample", "example", "info", "page",
                             "other"]))
    method, body, url = "GET", None, "/"
    if target == "decode":
        method, url = "POST", "/api/decode"
        body = _body(rng, {"z": [0.1, -0.2, 0.3], "label": 1})
    elif target == "interpolate":
        method, url = "POST", "/api/interpolate"
        body = _body(rng, {"a": 0, "b": 1, "steps": 4, "method": "slerp", "label": 0})
    elif target == "sample":
        params = {k: _query_value(rng) for k in ("seed", "temperature", "label", "extra") if rng.random() < 0.6}
        url = "/api/sample" + ("?" + "&".join(f"{k}={quote(v)}" for k, v in params.items()) if params else "")
    elif target == "example":
        url = "/api/example/" + quote(_query_value(rng) or "0", safe="")
    elif target == "info":
        url = "/api/info"
    elif target == "other":
        url = str(rng.choice(["/docs", "/openapi.json", "/api", "/api/decode/../info", "/%2e%2e/etc/passwd",
                              "/api/example/", "//api/info", "/" + "a" * 3000]))
    if rng.random() < 0.1:  # the wrong method
        method = str(rng.choice(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]))
        body = body if method in ("POST", "PUT", "PATCH") else None
    headers = _headers(rng)
    if body is not None and "content-type" not in headers:
        headers["content-type"] = "application/json"
    if body is not None and rng.random() < 0.05:
        headers["content-length"] = str(rng.choice(["abc", "-1", str(1 << 40), "99999999999999999999999"]))
    return {"method": method, "url": url, "content": body, "headers": headers,
            "what": f"{method} {url[:80]} body={None if body is None else body[:80]!r} headers={list(headers)}"}


def run(cases: int, seed: int) -> dict[str, Any]:
    torch.set_num_threads(1)
    client = build_client()
    rng = np.random.default_rng(seed)
    tally = Tally(SECONDS_LIMIT, RSS_LIMIT_MB)
    for case in range(cases):
        req = make_request(rng)
        what = req.pop("what")
        t = time.perf_counter()
        try:
            status = client.request(**req).status_code
            outcome = str(status)
            if status >= 500:
                tally.fail(case, what, f"status {status}")
        except Exception as e:  # noqa: BLE001 - the client could not send it (an invalid header value …)
            from httpx import HTTPError, InvalidURL, LocalProtocolError

            if isinstance(e, (InvalidURL, LocalProtocolError, HTTPError, ValueError, UnicodeError)):
                outcome = f"not sent ({type(e).__name__})"
            else:
                outcome = f"CRASH {type(e).__name__}"
                tally.fail(case, what, f"{type(e).__name__}: {str(e)[:300]}")
        tally.record(case, what, outcome, time.perf_counter() - t)
    return tally.summary("explorer endpoints (create_app via fastapi TestClient, Host 127.0.0.1)", cases, seed)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/hostile/fuzz_explorer.json"))
    args = ap.parse_args()
    doc = run(args.cases, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(doc, indent=1))
    print(json.dumps(doc, indent=1))
    return 1 if doc["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
