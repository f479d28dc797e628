"""Development and benchmark tools beside the product: never imported by the faces (publisher,
inference, firstparty, identity, pipeline, server); tests/unit/test_layers.py checks."""
