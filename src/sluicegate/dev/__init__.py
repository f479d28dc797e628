"""Development and benchmark tools beside the product: never imported by the faces (publisher,
inference, firstparty, identity, pipeline, server); tests/unit/test_layers.py checks.

The mock LLM provider (``mock_provider``, ``mock_tools``) runs beside the server: ``sluicegate demo``,
tests and benchmarks start it; the inference face treats it as any provider at its ``base_url``."""
