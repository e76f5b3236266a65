"""The Trainer's hooks: step budget, rounds, drop_last, per-step cosine over parameter groups, validator-driven
early stopping, a sampler as the batch source, exact resume with a step budget; the imputer and the codec train
through it (time limit, NaN guard)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vaekit import VAEImputer
from vaekit.core.config import ModelConfig, TrainConfig
from vaekit.core.model import VAE
from vaekit.core.objectives import MIWAE, OBJECTIVES
from vaekit.core.schedule import cosine_factor
from vaekit.core.trainer import Trainer
from vaekit.errors import CheckpointError, TrainingError, VaekitError
from vaekit.jobs.compress.lossy_train import RDObjective, train_codec

D = 12


def _rows(n: int = 130, seed: int = 0) -> torch.Tensor:
    return (torch.rand(n, D, generator=torch.Generator().manual_seed(seed)) < 0.3).float()


def _model() -> VAE:
    torch.manual_seed(11)
    return VAE(ModelConfig(input_shape=(D,), latent_dim=2, hidden=(16,)))


def _cfg(**kw) -> TrainConfig:
    base = {"batch_size": 50, "objective": "elbo", "warmup_epochs": 0.0, "seed": 3, "num_threads": 1, "precision": "fp32"}
    return TrainConfig(**{**base, **kw})


def _state(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Batches:
    """Records the batch sizes the objective sees."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.inner = OBJECTIVES.get("elbo")()
        self.beta_at = self.inner.beta_at

    def __call__(self, model, x, c=None, t=math.inf):
        self.sizes.append(len(x))
        return self.inner(model, x, c, t)


def test_max_steps_rounds_and_per_step_cosine_over_parameter_groups() -> None:
    m = _model()
    groups = lambda mod: torch.optim.Adam([{"params": mod.encoder.parameters()},
                                           {"params": mod.decoder.parameters(), "lr": 5e-3}], lr=1e-3)
    tr = Trainer(m, _cfg(max_steps=7, steps_per_round=3, min_lr_ratio=0.1), progress=False, optimizer=groups)
    hist = tr.fit(_rows())  # 3 batches a pass: the budget, not the epochs (250), ends it
    assert hist.stopped == "max_steps" and hist.steps == 7
    assert [r["step"] for r in hist.epochs] == [3, 6, 7]
    lrs = [g["lr"] for g in tr.optimizer.param_groups]  # set before the last step, s = 6 of T = 7
    assert lrs == [1e-3 * cosine_factor(6, 7, 0.1), 5e-3 * cosine_factor(6, 7, 0.1)]


def test_drop_last_skips_the_short_batch() -> None:
    for drop, sizes in ((True, [50, 50]), (False, [50, 50, 30])):
        obj = Batches()
        hist = Trainer(_model(), _cfg(epochs=2, drop_last=drop), progress=False, objective=obj).fit(_rows())
        assert obj.sizes == sizes * 2 and hist.steps == len(sizes) * 2
    with pytest.raises(VaekitError, match="no full batch"):
        Trainer(_model(), _cfg(epochs=1, drop_last=True, batch_size=200), progress=False).fit(_rows())


def test_validator_drives_keep_best_and_early_stopping() -> None:
    scores = iter([5.0, 4.0, 6.0, 7.0, 8.0, 9.0])
    m = _model()
    kept: dict[int, dict[str, torch.Tensor]] = {}
    tr = Trainer(m, _cfg(max_steps=40, steps_per_round=2, early_stopping=2), progress=False,
                 validator=lambda model: next(scores), on_epoch=lambda row: kept.update({int(row["epoch"]): _state(m)}))
    hist = tr.fit(_rows())
    assert hist.stopped == "early_stopping" and hist.steps == 8 and hist.best_epoch == 1
    assert [r["val_metric"] for r in hist.epochs] == [5.0, 4.0, 6.0, 7.0]
    assert _same(_state(m), kept[1]) and not _same(kept[1], kept[3])  # the weights of the validator's best round
    m2 = _model()  # keep_best=False: the last weights
    scores = iter([5.0, 4.0, 6.0, 7.0])
    Trainer(m2, _cfg(max_steps=40, steps_per_round=2, early_stopping=2, keep_best=False), progress=False,
            validator=lambda model: next(scores)).fit(_rows())
    assert _same(_state(m2), kept[3])


class RowSampler:
    """A sampler batch source with a checkpointable numpy generator."""

    def __init__(self, seed: int) -> None:
        self.rng, self.calls = np.random.default_rng(seed), []

    def __call__(self, batch_size: int) -> torch.Tensor:
        self.calls.append(batch_size)
        return torch.from_numpy(self.rng.random((batch_size, D)) < 0.3).float()

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]


def _kill_after(rounds: int):
    def stop(row: dict) -> None:
        if row["epoch"] + 1 >= rounds:
            raise KeyboardInterrupt
    return stop


@pytest.mark.parametrize("source", ["rows", "sampler"])
def test_step_budget_resumes_exactly_after_a_kill_and_a_time_limit_stop(tmp_path: Path, source: str) -> None:
    data = (lambda: RowSampler(5)) if source == "sampler" else (lambda: _rows())
    cfg = _cfg(max_steps=11, steps_per_round=4)  # rounds end mid-pass (3 batches a pass): the data order is kept
    full = _model()
    Trainer(full, cfg, out_dir=tmp_path / "full", progress=False).fit(data())
    m = _model()
    with pytest.raises(KeyboardInterrupt):  # killed after round 1 (its checkpoint on disk)
        Trainer(m, cfg, out_dir=tmp_path / "cut", progress=False, on_epoch=_kill_after(1)).fit(data())
    m = _model()  # then a time-limit stop one step into round 2 (mid-round checkpoint)
    hist = Trainer(m, TrainConfig(**{**cfg.to_dict(), "time_limit_min": 1e-9}), out_dir=tmp_path / "cut",
                   progress=False).fit(data(), resume=True)
    assert hist.stopped == "time_limit" and hist.steps == 5
    m = _model()
    hist = Trainer(m, cfg, out_dir=tmp_path / "cut", progress=False).fit(data(), resume=True)
    assert hist.steps == 11 and _same(_state(m), _state(full))


def test_sampler_source_calls_and_needs() -> None:
    s = RowSampler(0)
    hist = Trainer(_model(), _cfg(max_steps=6, batch_size=8), progress=False).fit(s)
    assert s.calls == [8] * 6 and hist.steps == 6
    with pytest.raises(VaekitError, match="step budget"):
        Trainer(_model(), _cfg(epochs=2), progress=False).fit(RowSampler(0))


def test_sampler_without_state_cannot_resume(tmp_path: Path) -> None:
    plain = lambda b: (torch.rand(b, D) < 0.3).float()
    with pytest.raises(KeyboardInterrupt):
        Trainer(_model(), _cfg(max_steps=6, steps_per_round=2), out_dir=tmp_path, progress=False,
                on_epoch=_kill_after(1)).fit(plain)
    with pytest.raises(CheckpointError, match="cannot resume exactly"):
        Trainer(_model(), _cfg(max_steps=6, steps_per_round=2), out_dir=tmp_path, progress=False).fit(plain,
                                                                                                      resume=True)


# --- the imputer and the codec through the Trainer ---------------------------------------------------------------
def _table() -> np.ndarray:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(80, 2))
    x = z @ rng.normal(size=(2, 5)) + 0.1 * rng.normal(size=(80, 5))
    x[rng.random(x.shape) < 0.2] = np.nan
    return x


SMALL = {"hidden": (16,), "k": 4, "n_samples": 20, "batch_size": 32, "random_state": 0, "n_threads": 1}


def test_imputer_honours_the_time_limit() -> None:
    imp = VAEImputer(**SMALL, max_steps=2000, time_limit_min=1e-9).fit(_table())
    assert imp.n_steps_ == 1 and np.isfinite(imp.transform(_table())).all()
    with pytest.raises(VaekitError, match="time_limit_min"):
        VAEImputer(time_limit_min=-1).fit(_table())


def _poisoned(real, at: int | None):
    """``real`` objective, with an inf loss at call ``at`` (every call when None)."""
    calls = {"n": 0}

    def call(self, *a, **k):
        out = real(self, *a, **k)
        calls["n"] += 1
        if at is None or calls["n"] == at:
            out.loss = out.loss * float("inf")
        return out
    return call


def test_imputer_rolls_back_a_nan_round_and_raises_after_three(monkeypatch: pytest.MonkeyPatch) -> None:
    real = MIWAE.__call__
    monkeypatch.setattr(MIWAE, "__call__", _poisoned(real, 30))  # step 29, in the round of steps 25–49
    with pytest.warns(UserWarning, match=r"NaN/inf at step 29 \(round 1\); rolled back .* runs again"):
        imp = VAEImputer(**SMALL, max_steps=60).fit(_table())
    assert imp.n_steps_ == 60 and all(torch.isfinite(p).all() for p in imp.model_.parameters())
    monkeypatch.setattr(MIWAE, "__call__", _poisoned(real, None))
    with pytest.raises(TrainingError, match="after 3 rollbacks"), pytest.warns(UserWarning):
        VAEImputer(**SMALL, max_steps=60).fit(_table())


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (16, 16, 1), dtype=np.uint8) for _ in range(4)]


CODEC = {"N": 4, "M": 4, "n_down": 2, "batch_size": 2, "crop": 16, "steps": 30, "finetune_steps": 5}


def test_codec_honours_the_time_limit(tmp_path: Path) -> None:
    codec = train_codec(_images(), tmp_path / "c", [50, 5], time_limit_min=1e-9, **CODEC)
    assert [i["train"]["steps"] for i in codec.info] == [1, 1]  # the limit is shared: one step per level


def test_codec_nan_guard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = RDObjective.__call__
    monkeypatch.setattr(RDObjective, "__call__", _poisoned(real, 3))
    with pytest.warns(UserWarning, match="rolled back"):
        codec = train_codec(_images(), tmp_path / "a", [50], **CODEC)
    assert codec.info[0]["train"]["steps"] == 30 and np.isfinite(codec.info[0]["train"]["loss"])
    monkeypatch.setattr(RDObjective, "__call__", _poisoned(real, None))
    with pytest.raises(TrainingError, match=r"codec training \(λ=50\).*after 3 rollbacks"), pytest.warns(UserWarning):
        train_codec(_images(), tmp_path / "b", [50], **CODEC)
