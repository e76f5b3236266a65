"""Web layer (optional extra ``vaekit[serve]``): the interactive latent explorer."""
from .explorer import create_app

__all__ = ["create_app"]
