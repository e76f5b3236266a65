"""Compression with trained VAEs: lossless bits-back coding and a lossy learned image codec (``.vkz`` files)."""
from vaekit.jobs.compress.container import Container, fingerprint, pack, read, unpack

__all__ = ["Container", "fingerprint", "pack", "read", "unpack"]
