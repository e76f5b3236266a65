"""``vaekit serve`` (vaekit.deploy.serve): every endpoint against the job's own API, 4xx answers, API key, Host
allow-list, body and row limits, micro-batching = unbatched (to float32 rounding), draining, and a Schemathesis run against
the service's own OpenAPI document (no 5xx). Tiny models built here (seconds)."""
from __future__ import annotations

import asyncio
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="fastapi's TestClient needs httpx")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import httpx

from tests.helpers import run_cli
from vaekit.core.checkpoint import save_model
from vaekit.core.config import ModelConfig
from vaekit.core.model import VAE
from vaekit.core.workflows import load
from vaekit.deploy.serve.app import Settings, create_app
from vaekit.deploy.serve.artifacts import load_all
from vaekit.deploy.serve.batching import MicroBatcher, ServiceClosing
from vaekit.deploy.serve.ops import Work
from vaekit.errors import VaekitError

BASE = "http://127.0.0.1:8000"
KEY = "k" * 8 + "-test-key-0123"
MAX_ROWS = 16


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from vaekit.jobs.anomaly.detector import VAEAnomalyDetector
    from vaekit.jobs.compress.entropy import build_tables
    from vaekit.jobs.compress.lossy import ImageCodec, save_codec
    from vaekit.jobs.compress.rd_model import RDConfig
    from vaekit.jobs.generate.tabular import TabularGenerator
    from vaekit.jobs.impute.folder import save_imputer
    from vaekit.jobs.impute.imputer import VAEImputer

    d = tmp_path_factory.mktemp("serve")
    torch.manual_seed(0)
    out = {"vae": save_model(VAE(ModelConfig(input_shape=(1, 6, 6), latent_dim=3, hidden=(16,))), d / "vae"),
           "cvae": save_model(VAE(ModelConfig(input_shape=(5,), latent_dim=2, hidden=(8,), likelihood="gaussian",
                                              n_conditions=3)), d / "cvae")}
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=60), "b": rng.choice(["x", "y", "z"], 60), "c": rng.integers(0, 2, 60)})
    VAEAnomalyDetector(max_steps=20, n_models=2, k=4, latent_dim=2, hidden=(8,), epochs=2, random_state=0,
                       n_threads=1).fit(df).save(d / "det")
    TabularGenerator(max_steps=20, latent_dim=2, hidden=(8,), epochs=2, random_state=0, condition_columns=["b"],
                     n_threads=1).fit(df).save(d / "gen")
    dm = df.copy()
    dm.loc[::4, "a"] = np.nan
    imp = VAEImputer(max_steps=20, hidden=(8,), n_samples=16, epochs=2, random_state=0, n_threads=1).fit(dm)
    save_imputer(imp, d / "imp")
    out["imp_fitted"] = imp.transform(dm.head(12))  # type: ignore[assignment]
    codec = ImageCodec(RDConfig(channels=1, N=8, M=8, n_down=2), [100.0, 10.0])
    for net in codec.levels:
        build_tables(net)
    save_codec(codec, d / "codec")
    out.update(det=d / "det", gen=d / "gen", imp=d / "imp", codec=d / "codec")
    (d / "key.txt").write_text(KEY + "\n")
    out["key"] = d / "key.txt"
    out["table"] = d / "table.csv"
    df.to_csv(out["table"], index=False)
    return out


@pytest.fixture(scope="module")
def arts(folders: dict[str, Path]) -> list[Any]:
    return load_all([str(folders[k]) for k in ("vae", "cvae", "det", "gen", "imp", "codec")], MAX_ROWS,
                    n_threads=1)


@pytest.fixture(scope="module")
def client(arts: list[Any]) -> Any:
    with TestClient(create_app(arts, Settings(max_rows=MAX_ROWS, max_body=1 << 16), access_log=lambda r: None),
                    base_url=BASE) as c:
        yield c


def _png(side: tuple[int, int] = (13, 17), seed: int = 0) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(seed).random(side) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


# --- every endpoint, against the job's own API ------------------------------------------------------------------
def test_health_models_and_spec(client: Any) -> None:
    assert client.get("/health").json()["status"] == "ok"
    models = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert {k: m["kind"] for k, m in models.items()} == {"vae": "vae", "cvae": "vae", "det": "anomaly_detector",
                                                          "gen": "generator", "imp": "imputer", "codec": "codec"}
    assert models["vae"]["bits_back"] and not models["cvae"]["bits_back"]  # gaussian, conditional: no bits-back
    assert "/models/vae/compress" in models["vae"]["endpoints"] and len(models["cvae"]["endpoints"]) == 4
    assert client.get("/models/det").json()["columns"] == ["a", "b", "c"]
    assert client.get("/models/nope").status_code == 404
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/models/vae/encode"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("VaeEncodeRequest")
    assert spec["components"]["schemas"]["VaeEncodeRequest"]["examples"][0]["x"] == [[0] * 36]
    assert "application/octet-stream" in spec["paths"]["/models/codec/compress"]["post"]["requestBody"]["content"]
    for path in ("/docs", "/redoc"):  # pages that would load JavaScript from a CDN
        assert client.get(path).status_code == 404


def test_vae_endpoints_match_the_model(client: Any, folders: dict[str, Path]) -> None:
    model, _ = load(folders["vae"])
    x = (torch.rand(3, 36, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    r = client.post("/models/vae/encode", json={"x": x.tolist()}).json()
    mu, logvar = model.encode(x)
    np.testing.assert_allclose(r["mu"], mu.detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(r["logvar"], logvar.detach().numpy(), atol=1e-6)
    rec = client.post("/models/vae/reconstruct", json={"x": x.tolist()}).json()["x"]
    np.testing.assert_allclose(rec, model.reconstruct(x).numpy(), atol=1e-6)
    dec = client.post("/models/vae/decode", json={"z": r["mu"]}).json()["x"]
    np.testing.assert_allclose(dec, rec, atol=1e-6)
    s1 = client.post("/models/vae/sample", json={"n": 4, "seed": 7, "temperature": 0.5}).json()
    want = model.sample(4, torch.Generator().manual_seed(7), 0.5)
    np.testing.assert_allclose(s1["x"], want.numpy(), atol=1e-6)
    assert s1["seed"] == 7 and client.post("/models/vae/sample", json={"n": 4, "seed": 7, "temperature": 0.5}
                                           ).json() == s1  # the same seed, the same samples
    assert client.post("/models/vae/sample", json={"n": 4, "seed": 8}).json()["x"] != s1["x"]
    fresh = client.post("/models/vae/sample", json={"n": 1}).json()
    assert isinstance(fresh["seed"], int) and client.post(
        "/models/vae/sample", json={"n": 1, "seed": fresh["seed"]}).json()["x"] == fresh["x"]
    png = client.post("/models/vae/decode", json={"z": r["mu"], "format": "png"})
    assert png.headers["content-type"] == "image/png"
    from PIL import Image

    assert Image.open(io.BytesIO(png.content)).size == (((6 + 1) * 3 + 1) * 2, (6 + 1 + 1) * 2)  # 3 images in a row


def test_conditional_vae_needs_valid_labels(client: Any, folders: dict[str, Path]) -> None:
    model, _ = load(folders["cvae"])
    x = torch.randn(2, 5)
    r = client.post("/models/cvae/encode", json={"x": x.tolist(), "labels": [0, 2]})
    np.testing.assert_allclose(r.json()["mu"], model.encode(x, torch.tensor([0, 2]))[0].detach().numpy(), atol=1e-6)
    assert "conditional" in client.post("/models/cvae/encode", json={"x": x.tolist()}).json()["detail"]
    assert client.post("/models/cvae/encode", json={"x": x.tolist(), "labels": [0, 3]}).status_code == 422
    assert client.post("/models/cvae/encode", json={"x": x.tolist(), "labels": [0]}).status_code == 422
    assert client.post("/models/cvae/sample", json={"n": 2, "seed": 0, "label": 1}).status_code == 200
    assert client.post("/models/vae/encode", json={"x": [[0] * 36], "labels": [0]}).status_code == 422


def test_bits_back_round_trip_and_cli_interop(client: Any, folders: dict[str, Path], tmp_path: Path,
                                              capsys: Any) -> None:
    x = (np.random.default_rng(2).random((3, 36)) > 0.5).astype(int)
    blob = client.post("/models/vae/compress", json={"x": x.tolist(), "latent_bits": 10})
    assert blob.status_code == 200 and blob.headers["content-type"] == "application/octet-stream"
    back = client.post("/models/vae/decompress", content=blob.content).json()
    assert back["x"] == x.tolist() and back["shape"] == [3, 36]
    (tmp_path / "s.vkz").write_bytes(blob.content)  # the service's file is a file of `vaekit compress --lossless`
    code, _, err = run_cli(capsys, "decompress", tmp_path / "s.vkz", "-o", tmp_path / "s.npy", "--model",
                           folders["vae"], "--no-progress")
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), x)
    bad = bytearray(blob.content)
    bad[len(bad) // 2] ^= 0xFF
    assert client.post("/models/vae/decompress", content=bytes(bad)).status_code == 422
    assert client.post("/models/vae/compress", json={"x": [[2] * 36]}).status_code == 422  # not a binary symbol


def test_detector_score_matches_decision_function(client: Any, folders: dict[str, Path]) -> None:
    from vaekit.jobs.anomaly.files import load_detector

    det = load_detector(folders["det"])
    rows = [{"a": 0.1, "b": "x", "c": 1}, {"a": 9.0, "b": "y", "c": 0}, {"a": -0.5, "b": "z", "c": 1}]
    r = client.post("/models/det/score", json={"rows": rows, "top": 2}).json()
    df = pd.DataFrame(rows)
    want = det.decision_function(df)
    np.testing.assert_allclose(r["scores"], want, rtol=1e-9)
    assert r["labels"] == (want > det.threshold_).astype(int).tolist() and r["threshold"] == det.threshold_
    assert r["top_columns"] == det.top_columns(df, 2)
    lists = client.post("/models/det/score", json={"rows": [list(v.values()) for v in rows], "top": 2}).json()
    assert lists == r  # rows as lists in column order: the same
    unseen = client.post("/models/det/score", json={"rows": [{"a": 0.1, "b": "never-seen", "c": 1}]}).json()
    np.testing.assert_allclose(unseen["scores"], det.decision_function(pd.DataFrame(
        [{"a": 0.1, "b": "never-seen", "c": 1}])), rtol=1e-9)


def test_imputer_matches_transform_and_folder_round_trip(client: Any, folders: dict[str, Path]) -> None:
    from vaekit.jobs.impute.folder import load_imputer

    imp = load_imputer(folders["imp"])
    rows = [{"a": None, "b": "x", "c": 1}, {"a": 0.3, "b": "y", "c": 0}, {"b": "z", "c": None}]
    r = client.post("/models/imp/impute", json={"rows": rows}).json()["rows"]
    want = imp.transform(pd.DataFrame(rows).astype({"a": float}))
    assert r[1] == {"a": 0.3, "b": "y", "c": 0}  # observed entries untouched
    np.testing.assert_allclose([v["a"] for v in r], want["a"].to_numpy(dtype=float), rtol=1e-12)
    assert [v["c"] for v in r] == [int(v) for v in want["c"]] and all(v["a"] is not None for v in r)
    table = pd.read_csv(folders["table"]).head(12)
    table.loc[::4, "a"] = np.nan
    pd.testing.assert_frame_equal(imp.transform(table), folders["imp_fitted"])  # saved = fitted, number for number
    schema = folders["imp"] / "schema.json"
    text = schema.read_text()
    try:
        schema.write_text(text + " ")
        with pytest.raises(VaekitError, match="schema.json"):  # the folder is sealed: an edited file is refused
            load_imputer(folders["imp"])
    finally:
        schema.write_text(text)
    m = client.post("/models/imp/impute", json={"rows": rows, "multiple": 3, "seed": 5}).json()
    assert len(m["imputations"]) == 3 and m == client.post(
        "/models/imp/impute", json={"rows": rows, "multiple": 3, "seed": 5}).json()


def test_generator_matches_sample(client: Any, folders: dict[str, Path]) -> None:
    from vaekit.jobs.generate.files import load_generator

    gen = load_generator(folders["gen"])
    r = client.post("/models/gen/generate", json={"n": 5, "seed": 3, "conditions": {"b": "y"},
                                                  "temperature": 0.8}).json()
    want = gen.sample(5, {"b": "y"}, 0.8, 3)
    assert [row["b"] for row in r["rows"]] == ["y"] * 5 and r["seed"] == 3
    np.testing.assert_allclose([row["a"] for row in r["rows"]], want["a"].to_numpy(), rtol=1e-12)
    assert "unknown column" in client.post("/models/gen/generate", json={"n": 2, "conditions": {"q": 1}}
                                           ).json()["detail"]


def test_codec_compress_decompress(client: Any, folders: dict[str, Path]) -> None:
    from PIL import Image

    from vaekit.jobs.compress.lossy import decompress_image, load_codec

    img = _png()
    blob = client.post("/models/codec/compress?quality=0", content=img)
    assert blob.status_code == 200 and float(blob.headers["x-bits-per-pixel"]) > 0
    png = client.post("/models/codec/decompress", content=blob.content)
    assert png.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png.content))),
                                  decompress_image(blob.content, load_codec(folders["codec"])))
    assert client.post("/models/codec/compress?quality=5", content=img).status_code == 422
    assert client.post("/models/codec/compress", content=b"not an image").status_code == 422
    assert client.post("/models/codec/decompress", content=b"junk").status_code == 422
    bits = client.post("/models/vae/compress", json={"x": [[0] * 36]}).content  # another codec's file
    assert client.post("/models/codec/decompress", content=bits).status_code == 422


# --- 4xx: shapes, dtypes, ranges, sizes, limits -----------------------------------------------------------------
@pytest.mark.parametrize("path,body,status", [
    ("/models/vae/encode", {"x": [[0.5] * 35]}, 422),                      # a row of the wrong width
    ("/models/vae/encode", {"x": [["a"] * 36]}, 422),                      # not numbers
    ("/models/vae/encode", {"x": [[2.0] * 36]}, 422),                      # outside [0, 1] for Bernoulli
    ("/models/vae/encode", {"x": []}, 422),                                # no rows
    ("/models/vae/encode", {"x": [[0.5] * 36] * (MAX_ROWS + 1)}, 413),     # over --max-rows
    ("/models/vae/encode", {"x": [[0.5] * 36], "extra": 1}, 422),          # unknown field
    ("/models/vae/decode", {"z": [[1e300] * 3]}, 422),                     # beyond float32
    ("/models/vae/sample", {"n": 10**6}, 413),
    ("/models/vae/sample", {"n": 1, "seed": -1}, 422),
    ("/models/vae/sample", {"n": 1, "temperature": 0}, 422),
    ("/models/det/score", {"rows": [{"a": "text", "b": "x", "c": 1}]}, 422),  # a word in a numeric column
    ("/models/det/score", {"rows": [{"a": 1, "zz": 2}]}, 422),             # unknown column
    ("/models/det/score", {"rows": [[1, "x"]]}, 422),                      # too few values
    ("/models/det/score", {"rows": [{"a": None, "b": "x", "c": 1}]}, 422),  # missing, not allowed at fit
    ("/models/imp/impute", {"rows": [{"a": 1}], "multiple": 10**4}, 422),
    ("/models/imp/impute", {"rows": [{"a": 1}] * 4, "multiple": 5}, 413),  # rows × imputations over the limit
    ("/models/gen/generate", {"n": 2, "conditions": {"b": ["x"] * 3}}, 422),  # 3 values for 2 rows
    ("/models/gen/generate", {"n": 0}, 422),
])
def test_bad_requests_are_4xx_with_one_line(client: Any, path: str, body: dict[str, Any], status: int) -> None:
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert detail and (isinstance(detail, list) or "\n" not in detail)


def test_nan_literals_and_bad_json_are_422(client: Any) -> None:
    for raw in (b'{"x": [[NaN' + b', 0' * 35 + b']]}', b'{"z": [[Infinity, 0, 0]]}', b'{"x": [[', b"\xff\xfe"):
        r = client.post("/models/vae/encode", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422, raw


def test_body_limit_and_host_allow_list(client: Any) -> None:
    big = json.dumps({"x": [[0.5] * 36] * 400}).encode()  # > the 64 KiB --max-body of this app
    r = client.post("/models/vae/encode", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "body" in r.json()["detail"]

    def chunks() -> Any:  # no Content-Length: the limit holds while the body is read
        for _ in range(20):
            yield b" " * 8192

    assert client.post("/models/vae/encode", content=chunks(), headers={"content-type": "application/json"}
                       ).status_code == 413
    for host in ("evil.example", "127.0.0.1.evil.example:8000", ""):
        r = client.get("/models", headers={"host": host})
        assert r.status_code == 400 and "models" not in r.text, host
    assert client.get("/models", headers={"host": "localhost:8000"}).status_code == 200


def test_api_key_cors_and_access_log(arts: list[Any], folders: dict[str, Path]) -> None:
    records: list[dict[str, Any]] = []
    app = create_app(arts, Settings(api_key_file=str(folders["key"]), cors_origins=["https://ui.example"]),
                     access_log=records.append)
    with TestClient(app, base_url=BASE) as c:
        assert c.get("/health").status_code == 200  # the probe needs no key
        for headers in ({}, {"x-api-key": "wrong"}, {"x-api-key": KEY[:-1]}):
            assert c.get("/models", headers=headers).status_code == 401
            assert c.post("/models/vae/encode", json={"x": [[0] * 36]}, headers=headers).status_code == 401
        ok = c.post("/models/vae/encode", json={"x": [[0] * 36]}, headers={"x-api-key": KEY})
        assert ok.status_code == 200
        assert c.get("/openapi.json", headers={"x-api-key": KEY}).json()["security"] == [{"apiKey": []}]
        pre = c.options("/models/vae/encode", headers={"origin": "https://ui.example",
                                                       "access-control-request-method": "POST"})
        assert pre.headers.get("access-control-allow-origin") == "https://ui.example"
    assert {"method", "path", "status", "duration_ms", "bytes"} <= set(records[0])
    last = [r for r in records if r["path"] == "/models/vae/encode" and r["method"] == "POST"][-1]
    assert last["status"] == 200 and last["bytes"] == len(ok.content) and last["duration_ms"] > 0
    with TestClient(create_app(arts, access_log=lambda r: None), base_url=BASE) as c:  # CORS off by default
        r = c.get("/health", headers={"origin": "https://ui.example"})
        assert "access-control-allow-origin" not in r.headers
    short = folders["key"].parent / "short.txt"
    short.write_text("abc")
    with pytest.raises(VaekitError, match="at least 16"):
        create_app(arts, Settings(api_key_file=str(short)))


# --- micro-batching --------------------------------------------------------------------------------------------
async def _concurrently(app: Any, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        rs = await asyncio.gather(*(c.post(p, json=b) for p, b in calls))
    return [r.json() for r in rs]


def test_batched_answers_equal_unbatched(arts: list[Any]) -> None:
    rng = np.random.default_rng(4)
    calls = []
    for i in range(30):
        n = int(rng.integers(1, 5))
        x = (rng.random((n, 36)) > 0.5).astype(float).tolist()
        calls += [("/models/vae/encode", {"x": x}), ("/models/vae/sample", {"n": n, "seed": i}),
                  ("/models/vae/reconstruct", {"x": x}),
                  ("/models/det/score", {"rows": [{"a": float(rng.normal()), "b": str(rng.choice(["x", "y"])),
                                                   "c": int(rng.integers(0, 2))} for _ in range(n)]})]
    batched = create_app(arts, Settings(max_rows=MAX_ROWS, batch_wait_ms=20), access_log=lambda r: None)
    alone = create_app(arts, Settings(max_rows=MAX_ROWS, batching=False), access_log=lambda r: None)
    got = asyncio.run(_concurrently(batched, calls))
    want = [asyncio.run(_concurrently(alone, [c]))[0] for c in calls]  # one request at a time
    for (path, _), g, w in zip(calls, got, want):
        assert g.keys() == w.keys(), path
        for k in g:
            if k in ("labels", "top_columns", "seed", "threshold", "z"):  # exact: decisions, seeds, sampled latents
                assert g[k] == w[k], (path, k)
            else:  # to float32 rounding (SIMD vs scalar tails of elementwise kernels: ops.py)
                np.testing.assert_allclose(g[k], w[k], rtol=1e-6, atol=1e-6, err_msg=f"{path} {k}")
    again = asyncio.run(_concurrently(alone, calls[:8]))  # alone, the same request: the same bytes
    assert again == want[:8]
    stats = batched.state.batcher.stats
    assert sum(stats.requests.values()) == len(calls)
    assert sum(stats.passes.values()) < len(calls) / 2 and max(stats.largest.values()) > 4


def test_batcher_isolates_errors_and_drains_on_close() -> None:
    def fn(works: list[Work]) -> list[Any]:
        if any(w.data == "bad" for w in works):
            raise VaekitError("bad row")
        return [w.data * 2 for w in works]

    async def main() -> tuple[list[Any], Any]:
        b = MicroBatcher(max_rows=100, max_wait=0.05)
        jobs = [asyncio.ensure_future(b.run("k", fn, Work(1, v), True)) for v in (1, "bad", 3, 4)]
        await asyncio.sleep(0)
        closing = asyncio.ensure_future(b.close())  # while the requests wait: they are answered first
        out = await asyncio.gather(*jobs, return_exceptions=True)
        await closing
        try:
            await b.run("k", fn, Work(1, 5), True)
            late: Any = None
        except ServiceClosing as e:
            late = e
        return out, late

    out, late = asyncio.run(main())
    assert out[0] == 2 and out[2] == 6 and out[3] == 8 and isinstance(out[1], VaekitError)
    assert isinstance(late, ServiceClosing)


# --- the CLI ------------------------------------------------------------------------------------------------------
def test_cli_help_bad_folder_and_start(capsys: Any, folders: dict[str, Path], monkeypatch: Any) -> None:
    code, out, _ = run_cli(capsys, "serve", "--help")
    assert code == 0 and "--api-key-file" in out and "--workers" in out and "--cors-origin" in out
    for bad in (folders["table"], folders["table"].parent / "missing", folders["table"].parent):
        code, out, err = run_cli(capsys, "serve", bad)
        assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in err
    code, _, err = run_cli(capsys, "serve", folders["vae"], "--workers", "0")
    assert code == 2 and "--workers" in err
    import uvicorn

    started: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append((app, kw)))
    code, _, err = run_cli(capsys, "serve", f"digits={folders['vae']}", folders["det"], "--port", "8123")
    assert code == 0, err
    (app, kw), = started
    assert kw["port"] == 8123 and kw["host"] == "127.0.0.1"
    with TestClient(app, base_url=BASE) as c:
        assert [m["name"] for m in c.get("/models").json()["models"]] == ["digits", "det"]


# --- property-based: no request the spec admits makes the service fail ------------------------------------------
def test_no_5xx_for_any_generated_request(arts: list[Any]) -> None:
    """Schemathesis draws requests from the service's own OpenAPI document (valid and invalid bodies, raw bytes,
    queries) for every operation; none may be answered with 5xx."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    app = create_app(arts, Settings(max_rows=MAX_ROWS, max_body=1 << 16), access_log=lambda r: None,
                     hosts=frozenset({"localhost", "127.0.0.1", "testserver"}))
    api = schemathesis.openapi.from_asgi("/openapi.json", app)
    seen = []
    for result in api.get_all_operations():
        op = result.ok()
        seen.append(op.label)

        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        @given(case=op.as_strategy())
        def check(case: Any) -> None:
            response = case.call()
            assert response.status_code < 500, (case.method, case.path, case.body, response.text[:300])

        check()
    assert "POST /models/det/score" in seen and "POST /models/codec/compress" in seen and len(seen) >= 19


@pytest.mark.slow
@pytest.mark.skipif(not (Path(__import__("sys").executable).parent / "vaekit").exists(), reason="no vaekit script")
def test_workers_processes_answer_like_the_model_and_stop_on_sigterm(folders: dict[str, Path], tmp_path: Path) -> None:
    """``vaekit serve --workers 2`` as a real server: two worker processes under the parent, each loading its own copy
    of the model; every answer equals the in-process model's; SIGTERM stops all of them with exit code 0."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    psutil = pytest.importorskip("psutil")

    with socket.socket() as s:  # a free loopback port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).parent / "vaekit"
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([str(exe), "serve", str(folders["vae"]), "--workers", "2", "--port", str(port),
                             "--threads", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "the server did not come up in 120 s"
            time.sleep(0.5)
        model, _ = load(folders["vae"])
        x = (torch.rand(5, 36, generator=torch.Generator().manual_seed(3)) > 0.5).float()
        want = model.encode(x)[0].detach().numpy()
        with httpx.Client(base_url=url, timeout=30) as c:
            for _ in range(20):  # connections spread over the workers; every one answers the same
                np.testing.assert_allclose(c.post("/models/vae/encode", json={"x": x.tolist()}).json()["mu"], want,
                                           atol=1e-6)
        busy = time.monotonic() + 30  # uvicorn's supervisor starts the workers as child processes of the parent
        while len(psutil.Process(proc.pid).children(recursive=True)) < 2 and time.monotonic() < busy:
            time.sleep(0.2)
        workers = [p for p in psutil.Process(proc.pid).children(recursive=True) if "python" in p.name().lower()
                   or "vaekit" in " ".join(p.cmdline())]
        assert len(workers) >= 2, [p.cmdline() for p in workers]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, proc.communicate()[1][-2000:]
        gone = time.monotonic() + 30
        while any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in workers) and time.monotonic() < gone:
            time.sleep(0.2)
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in workers)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
