"""Imputation: VAEImputer (MIWAE) for tables, inpainting for images, their files and their CLI."""
