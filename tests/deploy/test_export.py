"""``vaekit export``: ONNX / TorchScript graphs of VAEs and anomaly detectors agree with PyTorch (vaekit.deploy)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers import run_cli
from vaekit.core.checkpoint import save_model
from vaekit.core.config import ModelConfig
from vaekit.core.model import VAE
from vaekit.core.workflows import load
from vaekit.deploy import export as ex

TOL = 1e-4


def _model(tmp_path: Path, name: str, **cfg: object) -> Path:
    torch.manual_seed(0)
    return save_model(VAE(ModelConfig(**cfg)), tmp_path / name)  # type: ignore[arg-type]


def _ort(path: Path) -> Any:
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _check_vae(model_dir: Path, out: Path, batches: tuple[int, ...] = (1, 5, 64)) -> dict:
    """Export to ONNX, then run the files with onnxruntime at several batch sizes against the model itself."""
    doc = ex.export(model_dir, out, "onnx")
    model, _ = load(model_dir)
    cfg = model.config
    enc, dec = _ort(out / "encoder.onnx"), _ort(out / "decoder.onnx")
    g = torch.Generator().manual_seed(3)
    for n in batches:
        c = torch.nn.functional.one_hot(torch.randint(0, cfg.n_conditions, (n,), generator=g),
                                        cfg.n_conditions).float() if cfg.n_conditions else None
        x = torch.rand(n, cfg.data_dim, generator=g)
        feed = {"x": x.numpy()} | ({"c": c.numpy()} if c is not None else {})
        mu, logvar = enc.run(None, feed)
        with torch.no_grad():
            mu_t, lv_t = model.encode(x, c)
            params_t = model.decode(mu_t, c)
            mean_t = model.likelihood.mean(params_t)
        np.testing.assert_allclose(mu, mu_t.numpy(), atol=TOL, rtol=0)
        np.testing.assert_allclose(logvar, lv_t.numpy(), atol=TOL, rtol=0)
        params, mean = dec.run(None, {"z": mu_t.numpy()} | ({"c": c.numpy()} if c is not None else {}))
        assert params.shape == (n, model.decoder.n_params, model.decoder.data_dim) and mean.shape == (n, cfg.data_dim)
        np.testing.assert_allclose(params, params_t.numpy(), atol=TOL, rtol=0)
        np.testing.assert_allclose(mean, mean_t.numpy(), atol=TOL, rtol=0)
    saved = json.loads((out / "export.json").read_text())
    assert saved == json.loads(json.dumps(doc))
    assert saved["latent_dim"] == cfg.latent_dim and saved["input_shape"] == list(cfg.input_shape)
    assert saved["likelihood"] == cfg.likelihood and saved["vaekit_version"]
    digest = json.loads((model_dir / "config.json").read_text())["weights_blake2b"]
    assert saved["weights_blake2b"] == digest
    for name in ("encoder", "decoder"):
        graph = saved["graphs"][name]
        assert graph["check"]["max_abs_diff"] <= TOL and len(graph["check"]["batch_sizes"]) == 2
        assert all(t["shape"][0] == "batch" and t["dtype"] == "float32" for t in graph["inputs"] + graph["outputs"])
    return saved


def test_mlp_bernoulli(tmp_path: Path) -> None:
    d = _check_vae(_model(tmp_path, "m", input_shape=(36,), latent_dim=4, hidden=(32, 16)), tmp_path / "e")
    assert [t["name"] for t in d["graphs"]["encoder"]["outputs"]] == ["mu", "logvar"]
    assert [t["name"] for t in d["graphs"]["decoder"]["outputs"]] == ["params", "mean"]
    assert (tmp_path / "e" / "README.md").is_file()


def test_conv_model(tmp_path: Path) -> None:
    _check_vae(_model(tmp_path, "m", input_shape=(1, 12, 12), arch="conv", channels=(8, 16), hidden=(32,),
                      latent_dim=3), tmp_path / "e")


def test_conditional_model(tmp_path: Path) -> None:
    d = _check_vae(_model(tmp_path, "m", input_shape=(20,), latent_dim=3, hidden=(16,), n_conditions=4), tmp_path / "e")
    assert [t["name"] for t in d["graphs"]["encoder"]["inputs"]] == ["x", "c"]
    assert d["graphs"]["decoder"]["inputs"][1]["shape"] == ["batch", 4]


@pytest.mark.parametrize("obs_variance", ["decoder", "column"])
def test_gaussian_learned(tmp_path: Path, obs_variance: str) -> None:
    d = _check_vae(_model(tmp_path, "m", input_shape=(10,), latent_dim=2, hidden=(16,), likelihood="gaussian_learned",
                          obs_variance=obs_variance), tmp_path / "e")
    assert d["graphs"]["decoder"]["outputs"][0]["shape"] == ["batch", 2, 10]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_torchscript(tmp_path: Path) -> None:
    m = _model(tmp_path, "m", input_shape=(1, 8, 8), arch="conv", channels=(4,), hidden=(16,), latent_dim=2,
               n_conditions=2)
    doc = ex.export(m, tmp_path / "e", "torchscript")
    assert sorted(p.name for p in (tmp_path / "e").glob("*.pt")) == ["decoder.pt", "encoder.pt"]
    assert all(g["check"]["max_abs_diff"] <= TOL for g in doc["graphs"].values())
    model, _ = load(m)
    enc = torch.jit.load(str(tmp_path / "e" / "encoder.pt"))
    for n in (1, 9):
        x, c = torch.rand(n, 64), torch.nn.functional.one_hot(torch.arange(n) % 2, 2).float()
        with torch.no_grad():
            for a, b in zip(enc(x, c), model.encode(x, c)):
                assert torch.allclose(a, b, atol=TOL)


@pytest.fixture(scope="module")
def detector_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    from vaekit.jobs.anomaly.detector import VAEAnomalyDetector

    rng = np.random.default_rng(0)
    n = 200
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n) * 3 + 1, "cat": rng.choice(["x", "y", "z"], n),
                       "flag": rng.integers(0, 2, n)})
    det = VAEAnomalyDetector(n_models=2, max_steps=40, latent_dim=3, hidden=(16,), k=8, random_state=0).fit(df)
    d = tmp_path_factory.mktemp("det") / "detector"
    det.save(d)
    return d, df


def test_detector_score_graph(tmp_path: Path, detector_dir: tuple[Path, pd.DataFrame]) -> None:
    """score.onnx, fed the detector's own ε and its schema's encoding, gives decision_function's numbers."""
    from vaekit.data.tabular import TabularSchema
    from vaekit.jobs.anomaly.detector import VAEAnomalyDetector

    d, df = detector_dir
    det = VAEAnomalyDetector.load(d)
    out = tmp_path / "e"
    doc = ex.export(d, out, "onnx")
    assert doc["kind"] == "anomaly_detector" and doc["score_type"] == "nll" and doc["n_models"] == 2
    assert doc["graphs"]["score"]["check"]["max_abs_diff"] <= TOL
    assert doc["detector_check"]["max_rel_diff"] <= TOL
    assert set(doc["weights_blake2b"]) == {"member_0", "member_1"}
    schema = TabularSchema.load(out / "schema.json")
    eps = np.load(out / "score_eps.npy")
    assert eps.shape == (2, 8, 3)
    sess = _ort(out / "score.onnx")
    for rows in (df.iloc[:1], df.iloc[:50], df):  # dynamic batch, and the same rows scored alone or in a batch
        x = schema.encode(rows, "X", unknown="error").astype(np.float32)
        n = len(x)
        feeds = {"x": x, **{f"eps_{i}": np.ascontiguousarray(np.broadcast_to(e[:, None], (8, n, 3)))
                            for i, e in enumerate(eps)}}
        score, members = sess.run(None, feeds)
        want = det.decision_function(rows)
        np.testing.assert_allclose(score, want, rtol=1e-5, atol=TOL)
        np.testing.assert_allclose(members.mean(1), score, rtol=1e-6, atol=1e-5)
    # random ε of shape (k, N, d): the graph against the PyTorch member scores
    x = schema.encode(df.iloc[:20], "X").astype(np.float32)
    e = [torch.randn(8, 20, 3, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    got = sess.run(None, {"x": x, "eps_0": e[0].numpy(), "eps_1": e[1].numpy()})[1]
    with torch.no_grad():
        want = torch.stack([ex.member_score(m.float(), torch.from_numpy(x), ei, "nll") for m, ei in zip(det.models_, e)],
                           -1)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=TOL)


@pytest.mark.parametrize("zoo", [{"posterior": "iaf"}, {"stochastic_layers": 2}, {"prior": "mog"}],
                         ids=["iaf", "hierarchical", "mog"])
def test_detector_with_a_zoo_model_exports_its_own_scores(tmp_path: Path, zoo: dict) -> None:
    """The score graph runs the detector's one kernel (member_terms), so a zoo detector exports exactly too."""
    from vaekit.jobs.anomaly.detector import VAEAnomalyDetector

    rng = np.random.default_rng(1)
    df = pd.DataFrame({"a": rng.normal(size=120), "b": rng.normal(size=120), "cat": rng.choice(["x", "y"], 120)})
    det = VAEAnomalyDetector(n_models=1, max_steps=20, latent_dim=3, hidden=(16,), k=4, random_state=0, **zoo).fit(df)
    det.save(tmp_path / "det")
    doc = ex.export(tmp_path / "det", tmp_path / "e", "onnx")
    assert doc["detector_check"]["max_rel_diff"] <= TOL and doc["graphs"]["score"]["check"]["max_abs_diff"] <= TOL
    noise = det.models_[0].noise_dim
    assert np.load(tmp_path / "e" / "score_eps.npy").shape == (1, 4, noise)  # all layers' noise for a hierarchy
    assert noise == (6 if zoo.get("stochastic_layers") else 3)


def test_cli_round_trip(capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_npz: Path,
                        detector_dir: tuple[Path, pd.DataFrame]) -> None:
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--data", tiny_npz, "--out", run, "--epochs", 1, "--latent-dim", 3,
                           "--hidden", 16, "--no-progress")
    assert code == 0, err
    code, out, err = run_cli(capsys, "export", run, "--format", "onnx", "--out", tmp_path / "e")  # a run folder
    assert code == 0, err
    assert "encoder.onnx: max |onnxruntime − PyTorch|" in out and "decoder.onnx" in out
    doc = json.loads((tmp_path / "e" / "export.json").read_text())
    assert doc["source"] == str(run) and doc["input_shape"] == [36]
    code, out, err = run_cli(capsys, "export", detector_dir[0], "--format", "torchscript", "--out", tmp_path / "t")
    assert code == 0, err
    assert "score.pt" in out and (tmp_path / "t" / "score.pt").is_file()
    code, _, err = run_cli(capsys, "export", run, "--out", tmp_path / "e")  # already there
    assert code == 2 and "--overwrite" in err
    code, _, err = run_cli(capsys, "export", run, "--out", tmp_path / "e", "--overwrite", "--format", "torchscript")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == ["README.md", "decoder.pt", "encoder.pt", "export.json"]


def _one_line_error(capsys: pytest.CaptureFixture[str], *args: object) -> str:
    code, out, err = run_cli(capsys, "export", *args)
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_bad_inputs(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = _model(tmp_path, "m", input_shape=(6,), latent_dim=2, hidden=(8,))
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    assert "not found" in _one_line_error(capsys, tmp_path / "nope", "--out", tmp_path / "o")
    assert "not a vaekit model" in _one_line_error(capsys, tmp_path / "empty", "--out", tmp_path / "o")
    assert "not a model folder" in _one_line_error(capsys, tmp_path / "file.txt", "--out", tmp_path / "o")
    assert "--format" in _one_line_error(capsys, m, "--format", "tflite", "--out", tmp_path / "o")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    _one_line_error(capsys, tmp_path / "bad", "--out", tmp_path / "o")
    (tmp_path / "det").mkdir()
    (tmp_path / "det" / "detector.json").write_text(json.dumps({"format": "vaekit-anomaly", "version": 1}))
    _one_line_error(capsys, tmp_path / "det", "--out", tmp_path / "o")

    def unsupported(*a: object, **k: object) -> None:
        raise RuntimeError("Exporting the operator 'aten::foo' to ONNX opset version 17 is not supported.\nmore")

    with monkeypatch.context() as mp:
        mp.setattr(torch.onnx, "export", unsupported)
        err = _one_line_error(capsys, m, "--out", tmp_path / "o")
        assert "cannot be exported to onnx" in err and "aten::foo" in err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "README.md").write_text("my notes")
    assert "--overwrite" in _one_line_error(capsys, m, "--out", tmp_path / "mine")
    assert (tmp_path / "mine" / "README.md").read_text() == "my notes" and len(list((tmp_path / "mine").iterdir())) == 1
    assert "is a file" in _one_line_error(capsys, m, "--out", tmp_path / "file.txt")
    code, _, err = run_cli(capsys, "export", m, "--out", m / "export")
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in (m / "export").iterdir()}
    assert "input of this command" in _one_line_error(capsys, m, "--out", m / "export", "--overwrite")
    assert {p.name: p.read_bytes() for p in (m / "export").iterdir()} == before
    monkeypatch.setattr(ex, "installed", lambda pkg: pkg != "onnxruntime")
    assert "install 'vaekit[onnx]'" in _one_line_error(capsys, m, "--out", tmp_path / "o")
    assert not (tmp_path / "o").exists()
    code, _, err = run_cli(capsys, "export", m, "--format", "torchscript", "--out", tmp_path / "o")
    assert code == 0, err  # TorchScript needs no extra


def test_check_catches_a_wrong_graph(tmp_path: Path) -> None:
    """The export check is not vacuous: a graph whose exported file differs from PyTorch is refused."""
    _model(tmp_path, "m", input_shape=(6,), latent_dim=2, hidden=(8,))
    model, _ = load(tmp_path / "m")
    graph = ex.vae_graphs(model)[1]
    raw = ex.serialise("onnx", graph, tmp_path / "m")
    with torch.no_grad():
        next(graph.module.model.decoder.parameters()).add_(0.01)  # the PyTorch side changed after the export
    res = ex.check("onnx", raw, graph)
    assert res["max_abs_diff"] > TOL and res["max_scaled_diff"] > TOL
