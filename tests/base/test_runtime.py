"""The runtime layer: device and precision resolution, the thread rule, seeds; GPU paths where a GPU exists."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from vaekit import VAE, ModelConfig, TrainConfig, Trainer
from vaekit import runtime
from vaekit.errors import VaekitError


def test_device_resolution() -> None:
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    auto = runtime.resolve_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else auto.type)
    with pytest.raises(VaekitError, match="not one of"):
        runtime.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(VaekitError, match="no CUDA GPU"):
            runtime.resolve_device("cuda:0")


def test_precision_follows_the_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    assert runtime.resolve_precision("fp32", "cpu") == "fp32"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert runtime.resolve_precision("bf16", "cpu") == "bf16"
    for native in (False, True):  # forcing bf16 where the CPU only emulates it is ~8x slower: say so
        monkeypatch.setattr(runtime, "native_bf16", lambda native=native: native)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            assert runtime.resolve_precision("bf16", "cpu") == "bf16"
            assert runtime.resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
            assert runtime.resolve_precision("bf16", "cuda:0") == "bf16"  # not resolved, not a CPU: no warning
        assert [str(w.message)[:39] for w in seen] == ([] if native else ["precision 'bf16' on a CPU without nativ"])
    monkeypatch.undo()
    assert runtime.resolve_precision("auto", "cpu") == ("bf16" if runtime.native_bf16() else "fp32")
    with pytest.raises(VaekitError, match="precision"):
        runtime.resolve_precision("fp8", "cpu")


def test_thread_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert runtime.resolve_threads(3) == 3
    assert runtime.resolve_threads(None, n_params=10_000) == 1
    assert runtime.resolve_threads(None, n_params=10_000_000) == runtime.available_cores()
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (runtime.available_cores() + 3.0, 0.0, 0.0))
    assert runtime.resolve_threads(None, n_params=10_000_000) == 1  # other work keeps every core busy
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert runtime.resolve_threads(None, n_params=10_000) == 2
    with pytest.raises(VaekitError, match="threads"):
        runtime.resolve_threads(-1)
    before = torch.get_num_threads()
    with runtime.threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_seed_range_is_checked() -> None:
    assert runtime.check_seed(2**63 - 1) == 2**63 - 1
    for bad in (-1, 2**63, 1.5, True, "3"):
        with pytest.raises(VaekitError, match="seed"):
            runtime.check_seed(bad)
    with pytest.raises(VaekitError, match="seed"):
        TrainConfig(seed=2**64)


def _fit(device: str, seed: int = 0) -> bytes:
    runtime.seed_everything(seed)
    model = VAE(ModelConfig(input_shape=(16,), latent_dim=2, hidden=(8,)))
    x = torch.from_numpy((np.random.default_rng(0).random((64, 16)) < 0.3).astype(np.float32))
    Trainer(model, TrainConfig(epochs=2, batch_size=16, device=device, num_threads=1, precision="fp32"),
            progress=False).fit(x, x[:16])
    return hashlib.sha256(b"".join(v.cpu().numpy().tobytes() for v in model.state_dict().values())).digest()


def test_seeded_training_is_byte_identical_in_process() -> None:
    assert _fit("cpu", 0) == _fit("cpu", 0) != _fit("cpu", 1)


@pytest.mark.gpu
def test_training_and_evaluation_on_cuda() -> None:
    from vaekit import evaluate

    assert _fit("cuda", 0) == _fit("cuda", 0)
    model = VAE(ModelConfig(input_shape=(16,), latent_dim=2, hidden=(8,))).to("cuda")
    x = torch.from_numpy((np.random.default_rng(0).random((32, 16)) < 0.3).astype(np.float32)).to("cuda")
    res = evaluate(model, x, k=64, batch_size=16)
    assert np.isfinite(res["nll"])
