"""Decoder likelihoods p(x|z): each maps decoder outputs to a per-example log-probability.

Data layout: x is (N, D) flattened; decoder parameters are (N, P, D) with P = n_params.
Each likelihood declares the data it accepts (``validate``) and the values it trains on (``prepare``).
Likelihoods register under their config name in ``LIKELIHOODS``; ``from_config`` builds one from a ModelConfig and
``check_config`` refuses configs it cannot serve, so no code outside a likelihood switches on its name.

The contract and the registry live in :mod:`.base`; the families in :mod:`.elementwise` (images, vectors) and
:mod:`.mixed` (tables). Importing this package registers them all.
"""
from __future__ import annotations

from vaekit.core.likelihoods.base import LIKELIHOODS, LOG_2PI, Likelihood, make_likelihood
from vaekit.core.likelihoods.elementwise import (
    Bernoulli,
    Categorical,
    DiscretizedLogistic,
    Gaussian,
    GaussianLearned,
)
from vaekit.core.likelihoods.mixed import MixedTabular

__all__ = ["LIKELIHOODS", "LOG_2PI", "Bernoulli", "Categorical", "DiscretizedLogistic", "Gaussian", "GaussianLearned",
           "Likelihood", "MixedTabular", "make_likelihood"]
