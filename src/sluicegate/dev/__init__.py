"""Development tools beside the product: the demo site, the test/bench origin library, the HTML test adapter.

Nothing in the product packages (server, publisher, inference, pipeline, ...) imports ``sluicegate.dev``; the
tests, the benchmarks (``sluicegate.bench``) and ``sluicegate demo`` do.
"""
