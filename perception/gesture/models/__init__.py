"""Shipped gesture models (float16 weights, cast on load), each with the provenance of its training run beside it."""
