"""Shipped action models, each with the provenance of its training run beside it."""
