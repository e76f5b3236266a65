import itertools
import math

import numpy as np
import pytest
import torch

from vaekit.core.likelihoods import (
    Bernoulli,
    Categorical,
    DiscretizedLogistic,
    Gaussian,
    GaussianLearned,
)
from vaekit.core.priors import StandardNormal, gaussian_log_prob
from vaekit.errors import DataError


def test_kl_closed_form_matches_monte_carlo():
    torch.manual_seed(0)
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3)
    prior = StandardNormal(3)
    kl = prior.kl(mu, logvar).sum(-1)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(200_000, 4, 3)
    mc = (gaussian_log_prob(z, mu, logvar) - prior.log_prob(z)).mean(0)
    assert torch.allclose(kl, mc, atol=0.03, rtol=0.01)


def test_bernoulli_normalises_over_all_outcomes():
    logits = torch.randn(1, 1, 3)
    total = sum(math.exp(Bernoulli().log_prob(logits, torch.tensor([bits], dtype=torch.float32)).item())
                for bits in itertools.product([0, 1], repeat=3))
    assert total == pytest.approx(1.0, abs=1e-5)


def test_discretized_logistic_normalises_over_256_bins():
    lik = DiscretizedLogistic()
    params = torch.tensor([[[0.1], [-2.0]]]).expand(256, 2, 1)
    x = (torch.arange(256, dtype=torch.float32) / 127.5 - 1).unsqueeze(1)
    assert torch.exp(lik.log_prob(params, x)).sum().item() == pytest.approx(1.0, abs=1e-4)


def test_categorical_normalises_and_gaussian_matches_torch():
    cat = Categorical(4)
    params = torch.randn(1, 4, 2)
    total = sum(math.exp(cat.log_prob(params, torch.tensor([[a, b]], dtype=torch.float32)).item())
                for a in range(4) for b in range(4))
    assert total == pytest.approx(1.0, abs=1e-5)
    mu, x = torch.randn(5, 1, 6), torch.randn(5, 6)
    ref = torch.distributions.Normal(mu[:, 0], 0.3).log_prob(x).sum(-1)
    assert torch.allclose(Gaussian(0.3).log_prob(mu, x), ref, atol=1e-4)
    lv = torch.randn(5, 1, 6)
    ref2 = torch.distributions.Normal(mu[:, 0], torch.exp(0.5 * lv[:, 0])).log_prob(x).sum(-1)
    assert torch.allclose(GaussianLearned().log_prob(torch.cat([mu, lv], 1), x), ref2, atol=1e-4)


def test_log_prob_broadcasts_over_sample_dimension():
    logits = torch.randn(7, 5, 1, 10)
    x = (torch.rand(5, 10) < 0.5).float()
    out = Bernoulli().log_prob(logits, x)
    assert out.shape == (7, 5)
    assert torch.allclose(out[3], Bernoulli().log_prob(logits[3], x))


def test_prepare_validates_ranges_and_nan():
    with pytest.raises(DataError, match=r"data\.npz.*\[0, 1\]"):
        Bernoulli().prepare(np.array([[0.0, 1.5]]), "data.npz")
    with pytest.raises(DataError, match="NaN"):
        Bernoulli().prepare(np.array([[0.0, np.nan]]), "x.csv")
    with pytest.raises(DataError, match="8-bit"):
        DiscretizedLogistic().prepare(np.array([[0.5, 0.2]], dtype=np.float32), "f")
    assert Bernoulli().prepare(np.array([[0, 255]], dtype=np.uint8), "u8").tolist() == [[0.0, 1.0]]
    with pytest.raises(DataError, match="integers in 0..3"):
        Categorical(4).prepare(np.array([[0, 4]]), "cat")
