import pytest
import torch

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="fastapi's TestClient needs httpx")
from fastapi.testclient import TestClient  # noqa: E402

from vaekit.core.config import ModelConfig
from vaekit.core.model import VAE
from vaekit.jobs.explore.server import create_app


def _client(n_conditions=0, with_examples=True):
    torch.manual_seed(0)
    m = VAE(ModelConfig(input_shape=(1, 6, 6), latent_dim=3, hidden=(16,), n_conditions=n_conditions)).eval()
    ex = torch.rand(5, 36) if with_examples else None
    return TestClient(create_app(m, ex, None))


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
