"""The shipped person detector (provenance beside it)."""
