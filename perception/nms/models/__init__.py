"""The shipped Seq2Seq-NMS models (provenance beside them)."""
