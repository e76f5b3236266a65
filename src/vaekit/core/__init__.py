"""The core: config, likelihoods, priors, networks, the VAE, the inference kernel, objectives, trainer, evaluation,
checkpoints. It knows nothing of the jobs built on it."""
