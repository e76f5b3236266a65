import numpy as np
import pytest
import torch

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="fastapi's TestClient needs httpx")
from fastapi.testclient import TestClient  # noqa: E402

from vaekit.core.config import ModelConfig
from vaekit.core.model import VAE
from vaekit.jobs.explore.server import MAX_BODY, allowed_hosts, create_app


def _client(n_conditions=0, with_examples=True, base_url="http://127.0.0.1:8000", **kw):
    torch.manual_seed(0)
    m = VAE(ModelConfig(input_shape=(1, 6, 6), latent_dim=3, hidden=(16,), n_conditions=n_conditions)).eval()
    ex = torch.rand(5, 36) if with_examples else None
    return TestClient(create_app(m, ex, None, **kw), base_url=base_url)


def test_page_and_info():
    c = _client()
    assert "latent explorer" in c.get("/").text
    assert c.get("/api/info").json() == {"latent_dim": 3, "image_shape": [1, 6, 6], "n_conditions": 0,
                                         "n_examples": 5, "likelihood": "bernoulli"}


def test_decode_changes_with_z_and_validates():
    c = _client()
    a = c.post("/api/decode", json={"z": [0, 0, 0]}).json()["image"]
    b = c.post("/api/decode", json={"z": [2.5, 0, 0]}).json()["image"]
    assert a.startswith("data:image/png;base64,") and a != b
    assert c.post("/api/decode", json={"z": [0, 0]}).status_code == 422
    assert c.post("/api/decode", json={"z": "x"}).status_code == 422


def test_sample_example_interpolate():
    c = _client()
    s1, s2 = c.get("/api/sample?seed=1").json(), c.get("/api/sample?seed=2").json()
    assert len(s1["z"]) == 3 and s1["z"] != s2["z"]
    assert c.get("/api/sample?seed=1").json() == s1  # seeded
    assert len(c.get("/api/example/4").json()["z"]) == 3
    assert c.get("/api/example/5").status_code == 404
    r = c.post("/api/interpolate", json={"a": 0, "b": 3, "steps": 5})
    assert r.status_code == 200 and r.json()["image"].startswith("data:image/png")
    assert c.post("/api/interpolate", json={"a": 0, "b": 3, "steps": 500}).status_code == 422
    assert _client(with_examples=False).get("/api/example/0").status_code == 404


def test_conditional_labels_are_checked():
    c = _client(n_conditions=3)
    assert c.post("/api/decode", json={"z": [0, 0, 0], "label": 2}).status_code == 200
    assert c.post("/api/decode", json={"z": [0, 0, 0], "label": 7}).status_code == 422


def test_host_header_allow_list_blocks_dns_rebinding():
    c = _client()
    for host in ("localhost:8000", "127.0.0.1", "[::1]:8000", "LOCALHOST"):
        assert c.get("/api/example/0", headers={"host": host}).status_code == 200, host
    for host in ("evil.example:8000", "127.0.0.1.evil.example", "testserver", "", "[::2]:8000"):
        r = c.get("/api/example/0", headers={"host": host})
        assert r.status_code in (400, 421) and "z" not in r.text, host
    assert c.post("/api/decode", json={"z": [0, 0, 0]}, headers={"host": "rebound.example"}).status_code == 400
    # --host names another address: that address is allowed too, the loopback names stay allowed
    hosts = allowed_hosts("192.168.1.5")
    assert {"localhost", "127.0.0.1", "[::1]", "192.168.1.5"} <= hosts and "evil.example" not in hosts
    assert "[fe80::1]" in allowed_hosts("fe80::1")
    lan = _client(base_url="http://192.168.1.5:8000", hosts=hosts)
    assert lan.get("/api/info").status_code == 200
    assert lan.get("/api/info", headers={"host": "evil.example"}).status_code == 400


def test_big_bodies_are_refused_with_413():
    c = _client()
    big = b'{"z": [' + b"0," * (MAX_BODY // 2 + 10) + b'0]}'
    r = c.post("/api/decode", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413

    def chunks():  # no Content-Length: the limit holds while the body is read
        for _ in range(40):
            yield b" " * 65536

    r = c.post("/api/decode", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert c.post("/api/decode", json={"z": [0, 0, 0]}).status_code == 200


def test_huge_seeds_and_counts_are_4xx_not_500():
    c = _client()
    for q in ("seed=" + "9" * 30, "seed=-1", f"seed={2**63}", "seed=abc", "temperature=nan", "temperature=1e400"):
        assert 400 <= c.get(f"/api/sample?{q}").status_code < 500, q
    assert c.get(f"/api/sample?seed={2**63 - 1}").status_code == 200
    assert c.get("/api/example/" + "9" * 30).status_code in (404, 422)
    for body in ({"a": 10**30, "b": 0}, {"a": 0, "b": 1, "steps": 10**30}):
        assert 400 <= c.post("/api/interpolate", json=body).status_code < 500, body
    cc = _client(n_conditions=3)
    assert cc.post("/api/interpolate", json={"a": 0, "b": 1, "label": 10**30}).status_code == 422
    assert cc.get(f"/api/sample?label={10**30}").status_code == 422
    assert 400 <= c.post("/api/decode", content=b'{"z": [1e400, 0, 0]}',
                         headers={"content-type": "application/json"}).status_code < 500
    assert 400 <= c.post("/api/decode", json={"z": [0] * 5000}).status_code < 500


def test_no_docs_pages_loading_a_cdn():
    c = _client()
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
        r = c.get(path)
        assert r.status_code == 404 and "cdn" not in r.text.lower() and "http" not in r.text.lower(), path
    assert "http://" not in c.get("/").text and "https://" not in c.get("/").text


def test_explore_warns_when_the_page_is_reachable_from_the_network(monkeypatch, capsys):
    import vaekit.jobs.explore.server as server
    from tests.helpers import run_cli

    calls = []
    monkeypatch.setattr(server, "serve", lambda *a: calls.append(a))
    code, _, err = run_cli(capsys, "explore", "some-model", "--host", "0.0.0.0")
    assert code == 0 and "reachable from the network" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(capsys, "explore", "some-model")
    assert code == 0 and err == "" and [c[2] for c in calls] == ["0.0.0.0", "127.0.0.1"]
    assert {"localhost", "127.0.0.1", "[::1]"} <= allowed_hosts("0.0.0.0")


def test_thumbnails_are_paged_and_bounded():
    from vaekit.jobs.explore.server import MAX_THUMBNAILS

    c = _client()
    j = c.get("/api/thumbnails?start=1&count=3").json()
    assert j["start"] == 1 and j["total"] == 5 and len(j["images"]) == 3 and j["labels"] is None
    assert all(s.startswith("data:image/png;base64,") for s in j["images"]) and len(set(j["images"])) == 3
    assert len(c.get("/api/thumbnails?start=3&count=48").json()["images"]) == 2  # the last page is short
    assert c.get("/api/thumbnails?start=5").status_code == 404
    for q in ("count=0", f"count={MAX_THUMBNAILS + 1}", "start=-1", "start=" + "9" * 30, "count=abc"):
        assert c.get(f"/api/thumbnails?{q}").status_code == 422, q
    assert _client(with_examples=False).get("/api/thumbnails").status_code == 404


def test_latent_overview_orders_the_sliders_by_kl_and_maps_every_example():


    c = _client()
    j = c.get("/api/latent").json()
    assert len(j["kl"]) == 3 and all(v >= 0 for v in j["kl"])
    assert j["order"] == [int(i) for i in np.argsort(-np.asarray(j["kl"]), kind="stable")]
    assert len(j["map"]["points"]) == 5 and all(len(p) == 2 for p in j["map"]["points"])
    assert j["map"]["axes"] == ["principal component 1", "principal component 2"]
    none = _client(with_examples=False).get("/api/latent").json()
    assert none == {"kl": None, "order": [0, 1, 2], "map": None, "labels": None}


def test_overview_falls_back_to_the_two_largest_kl_dimensions():
    from vaekit.jobs.explore.latent import encode, overview

    torch.manual_seed(0)
    m = VAE(ModelConfig(input_shape=(1, 6, 6), latent_dim=3, hidden=(16,))).eval()
    x = torch.rand(2, 36)  # too few examples for PCA
    o = overview(m, x)
    z = encode(m, x).numpy()
    top = o["order"][:2]
    assert o["map"]["axes"] == [f"z{top[0]}", f"z{top[1]}"]
    assert np.allclose(o["map"]["points"], z[:, top], atol=1e-4)
    assert len(overview(m, torch.rand(7, 36), max_points=4)["map"]["points"]) == 4
