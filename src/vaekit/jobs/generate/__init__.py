"""Generation: TabularGenerator (conditional tabular VAE), its folder format and its CLI."""
