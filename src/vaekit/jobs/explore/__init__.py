"""Explore the latent space: encode, interpolate, traverse, maps, attributes (``latent``), the interactive page
(``server``, optional extra ``vaekit[serve]``) and their commands (``cli``)."""
