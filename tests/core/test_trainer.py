import pytest
import torch

from vaekit.core.config import ModelConfig, TrainConfig
from vaekit.core.model import VAE
from vaekit.core.preprocess import prepare
from vaekit.core.trainer import CHECKPOINT, Trainer
from vaekit.data import load_splits
from vaekit.errors import CheckpointError, TrainingError


def _data(tiny_npz):
    sp = load_splits(tiny_npz)
    m = VAE(ModelConfig(input_shape=(36,), latent_dim=4, hidden=(32,)))
    return prepare(sp["train"].x, m.likelihood, "t")[0], prepare(sp["valid"].x, m.likelihood, "v")[0]


def _fit(out, xtr, xva, epochs, resume=False, **kw):
    torch.manual_seed(123)  # the trainer re-seeds; this makes sure initial weights match too
    m = VAE(ModelConfig(input_shape=(36,), latent_dim=4, hidden=(32,)))
    cfg = TrainConfig(epochs=4, batch_size=50, seed=7, warmup_epochs=1, **kw)
    tr = Trainer(m, cfg, out_dir=out, progress=False)
    if epochs < 4:  # simulate a kill: stop after `epochs` epochs
        tr.cfg = TrainConfig(**{**cfg.to_dict(), "epochs": 4})

        def stop(row):
            if row["epoch"] + 1 >= epochs:
                raise KeyboardInterrupt
        tr.on_epoch = stop
        with pytest.raises(KeyboardInterrupt):
            tr.fit(xtr, xva)
        return None
    tr.fit(xtr, xva, resume=resume)
    return m, tr.history


def test_training_reduces_loss_and_writes_outputs(tmp_path, tiny_npz):
    xtr, xva = _data(tiny_npz)
    m, hist = _fit(tmp_path / "run", xtr, xva, 4)
    assert hist.epochs[-1]["val_elbo"] > hist.epochs[0]["val_elbo"]
    assert (tmp_path / "run" / "metrics.csv").read_text().count("\n") == 5
    assert (tmp_path / "run" / "model" / "model.safetensors").exists()
    assert (tmp_path / "run" / CHECKPOINT).exists()


def test_same_seed_same_model(tmp_path, tiny_npz):
    xtr, xva = _data(tiny_npz)
    a, _ = _fit(tmp_path / "a", xtr, xva, 4)
    b, _ = _fit(tmp_path / "b", xtr, xva, 4)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


def test_resume_equals_uninterrupted_run(tmp_path, tiny_npz):
    xtr, xva = _data(tiny_npz)
    full, hist_full = _fit(tmp_path / "full", xtr, xva, 4)
    _fit(tmp_path / "cut", xtr, xva, 2)  # killed after epoch 2 (checkpoint of epoch 2 on disk)
    resumed, hist_res = _fit(tmp_path / "cut", xtr, xva, 4, resume=True)
    for (k, va), vb in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(va, vb), k
    assert [r["val_elbo"] for r in hist_full.epochs] == [r["val_elbo"] for r in hist_res.epochs]


def test_resume_with_other_model_is_refused(tmp_path, tiny_npz):
    xtr, xva = _data(tiny_npz)
    _fit(tmp_path / "r", xtr, xva, 2)
    m = VAE(ModelConfig(input_shape=(36,), latent_dim=5, hidden=(32,)))
    with pytest.raises(CheckpointError):
        Trainer(m, TrainConfig(epochs=4), out_dir=tmp_path / "r", progress=False).fit(xtr, xva, resume=True)


def test_nan_loss_is_caught_with_its_step(tmp_path, tiny_npz):
    xtr, xva = _data(tiny_npz)
    xtr = xtr.clone()
    xtr[130, 3] = float("nan")  # poisons whichever batch holds row 130
    m = VAE(ModelConfig(input_shape=(36,), latent_dim=4, hidden=(32,)))
    with pytest.raises(TrainingError, match=r"NaN/inf at epoch 0, step \d+"):
        Trainer(m, TrainConfig(epochs=2, nan_policy="raise"), progress=False).fit(xtr, xva)


def test_nan_rollback_keeps_weights_finite(tmp_path, tiny_npz):
    xtr, xva = _data(tiny_npz)
    m = VAE(ModelConfig(input_shape=(36,), latent_dim=4, hidden=(32,)))
    tr = Trainer(m, TrainConfig(epochs=1, lr=1e-3, nan_policy="rollback"), progress=False)
    calls = {"n": 0}
    real = tr.objective

    def flaky(*a, **k):  # the 3rd step returns inf once
        out = real(*a, **k)
        calls["n"] += 1
        if calls["n"] == 3:
            out.loss = out.loss * float("inf")
        return out
    tr.objective = flaky
    tr.objective.beta_at = real.beta_at
    with pytest.warns(UserWarning, match="rolled back"):
        tr.fit(xtr, xva)
    assert all(torch.isfinite(p).all() for p in m.parameters())
    assert tr.optimizer.param_groups[0]["lr"] < 1e-3


def test_early_stopping_and_iwae_objective(tmp_path, tiny_npz):
    xtr, xva = _data(tiny_npz)
    m = VAE(ModelConfig(input_shape=(36,), latent_dim=4, hidden=(32,)))
    tr = Trainer(m, TrainConfig(epochs=200, lr=0.05, early_stopping=2, objective="iwae", iwae_k=3,
                                schedule="constant"), progress=False)
    hist = tr.fit(xtr, xva)
    assert hist.stopped == "early_stopping" and len(hist.epochs) < 200
    assert "val_iwae" in hist.epochs[0] and hist.epochs[0]["val_iwae"] >= hist.epochs[0]["val_elbo"] - 0.5


class _Terminal:
    """A stderr stand-in that says it is a terminal and keeps what tqdm writes."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> int:
        self.text += s
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def test_progress_bars_only_where_someone_watches(tmp_path, tiny_npz, monkeypatch, capsys):
    """progress=True draws epoch bars on a terminal; into a pipe or log file (pytest's capture) nothing is written."""
    xtr, xva = _data(tiny_npz)

    def fit(out):
        m = VAE(ModelConfig(input_shape=(36,), latent_dim=4, hidden=(32,)))
        Trainer(m, TrainConfig(epochs=2, batch_size=50, seed=7), out_dir=out, progress=True).fit(xtr, xva)

    fit(tmp_path / "pipe")
    assert "epoch 1/2" not in capsys.readouterr().err
    term = _Terminal()
    monkeypatch.setattr("sys.stderr", term)
    fit(tmp_path / "tty")
    assert "epoch 1/2" in term.text and "epoch 2/2" in term.text
