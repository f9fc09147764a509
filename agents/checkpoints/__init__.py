"""Shipped PPO checkpoints of the active face recognition agents (provenance beside them)."""
