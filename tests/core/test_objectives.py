import math

import pytest
import torch

from vaekit.core.config import ModelConfig
from vaekit.core.evaluate import evaluate
from vaekit.core.model import VAE
from vaekit.core.objectives import ELBO, IWAE


def _model_and_data():
    torch.manual_seed(0)
    m = VAE(ModelConfig(input_shape=(12,), latent_dim=3, hidden=(16,)))
    x = (torch.rand(64, 12) < 0.3).float()
    return m, x


def test_iwae_bound_is_tighter_than_elbo_on_average():
    m, x = _model_and_data()
    torch.manual_seed(1)
    elbo = torch.stack([ELBO()(m, x).elbo for _ in range(50)]).mean()
    torch.manual_seed(1)
    iwae = torch.stack([-IWAE(k=20)(m, x).loss for _ in range(50)]).mean()
    assert iwae > elbo + 0.05


def test_iwae_with_k1_equals_elbo_in_expectation():
    m, x = _model_and_data()
    torch.manual_seed(2)
    a = torch.stack([-IWAE(k=1)(m, x).loss for _ in range(300)]).mean()
    torch.manual_seed(3)
    b = torch.stack([-ELBO()(m, x).loss for _ in range(300)]).mean()
    assert a.item() == pytest.approx(b.item(), abs=0.15)


def test_warmup_and_free_bits():
    obj = ELBO(beta=2.0, warmup=4.0)
    assert obj.beta_at(0) == 0 and obj.beta_at(2) == 1.0 and obj.beta_at(10) == 2.0
    m, x = _model_and_data()
    torch.manual_seed(0)
    plain = ELBO()(m, x)
    torch.manual_seed(0)
    fb = ELBO(free_bits=5.0)(m, x)  # every dimension's KL is below 5 nats here → 3·5 nats of KL term
    assert fb.loss.item() == pytest.approx(plain.recon.item() + 15.0, rel=1e-5)


def test_importance_sampled_nll_tightens_with_k_and_beats_elbo():
    m, x = _model_and_data()
    nlls = [evaluate(m, x, k=k, seed=0)["nll"] for k in (1, 10, 200)]
    res = evaluate(m, x, k=200, seed=0)
    assert nlls[0] > nlls[1] > nlls[2]
    assert -res["elbo"] >= res["nll"]


def test_is_nll_matches_exact_marginal_of_linear_gaussian_model():
    """p(z)=N(0,I), p(x|z)=N(Wz+b, σ²I) ⇒ p(x)=N(b, WWᵀ+σ²I): the k=3000 IS estimate must agree."""
    torch.manual_seed(0)
    cfg = ModelConfig(input_shape=(5,), latent_dim=2, hidden=(), likelihood="gaussian", gaussian_sigma=0.5)
    m = VAE(cfg)
    x = torch.randn(20, 5)
    W, b = m.decoder.net[0].weight.detach(), m.decoder.net[0].bias.detach()
    exact = -torch.distributions.MultivariateNormal(b, W @ W.T + 0.25 * torch.eye(5)).log_prob(x).mean()
    est = evaluate(m, x, k=3000, seed=0, batch_size=7, memory_mb=0.01)["nll"]
    assert est == pytest.approx(exact.item(), abs=0.05)
    assert est >= exact.item() - 0.01  # an IS estimate of log p(x) is biased low → NLL biased high


def test_chunking_does_not_change_the_estimate_beyond_noise():
    m, x = _model_and_data()
    a = evaluate(m, x, k=500, seed=0, memory_mb=0.05)["nll"]
    b = evaluate(m, x, k=500, seed=0, memory_mb=512)["nll"]
    assert abs(a - b) < 0.05 and math.isfinite(a)


def test_compiled_evaluation_matches_eager():
    m, x = _model_and_data()
    a = evaluate(m, x[:16], k=64, seed=0, compile=False)
    b = evaluate(m, x[:16], k=64, seed=0, compile=True)
    assert b["nll"] == pytest.approx(a["nll"], abs=1e-3) and b["elbo"] == pytest.approx(a["elbo"], abs=1e-3)
