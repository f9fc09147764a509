"""Shipped expression models: ``expression_models.pt`` (the tables' models and the Monte Carlo dropout seed
study; packed weights, :func:`hcgym.perception.expression.study.load_models`) and ``expression_stream.pt``
(the live sensor's model, float16 weights cast on load), each with the provenance of its training beside it."""
