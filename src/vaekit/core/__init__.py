"""The core: config, likelihoods, priors, networks, the VAE, the inference kernel, objectives, trainer, evaluation,
checkpoints. It knows nothing of the jobs built on it."""
from vaekit.core import hierarchical  # noqa: E402,F401  registers the hierarchical model family that VAE(cfg) builds
