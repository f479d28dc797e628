"""Development tools beside the product, shared by the tests, the benchmarks and ``sluicegate demo``.

- ``demo``: the bundled demo site (``python -m sluicegate.dev.demo``, started by ``sluicegate demo``).
- ``origin/``: the one origin library (content generators, the fast bench origin, the hostile, heavy,
  measuring and recording test origins, ``ThreadedApp``/``LoopThread`` to run them).
- ``process``: server processes in their own session, stopped by process group (``Proc``/``Procs``).
- ``html_adapter``: the html5lib-tests token format over the HTML lexer, for conformance checks.
- ``buffered``: the "buffered" side of ``bench stream-ab`` (responses held whole, then sent with their length).
- ``mock_provider`` (+ ``mock_tools``): the mock LLM provider; it runs beside the server (``sluicegate demo``,
  tests, benchmarks start it) and the inference face treats it as any provider at its ``base_url``.

Nothing in the product packages (server, edge, upstream, publisher, inference, pipeline, config, ...) imports
``sluicegate.dev`` (tests/unit/test_layers.py checks); ``sluicegate demo`` runs the demo site as a separate
process.
"""
