"""Development tools beside the product: the mock LLM provider, demo and test origins. Never imported by the
faces (publisher, inference) or the edge; started beside the server by `sluicegate demo`, tests and benchmarks.
"""
