"""The one origin library shared by the tests, the benchmarks and the demo.

- ``serve``: ``free_port`` and ``ThreadedApp`` (an aiohttp.web app on its own loop in a thread) — how every
  in-process origin is run (tests, bench integration tests).
- ``content``: deterministic page generators (link-heavy HTML of any size, trickled gzip'd HTML).
- ``fast``: the raw asyncio origin the publisher benchmarks measure against
  (``python -m sluicegate.dev.origin.fast``; trickle, large binaries, pre-gzipped HTML).
- ``hostile``: normal pages plus every failure a proxy must survive (the integration tests' origin).
- ``heavy``: big rewritable pages, gzip bombs, never-ending scripts (the fairness tests).
- ``measure``: a small well-behaved origin for the measuring commands' tests (page, trickle, status, echo).
- ``recording``: a raw asyncio origin that keeps every request byte for byte (the round-trip tests).

The demo site (``sluicegate.dev.demo``) and the mock LLM provider sit beside it in ``sluicegate.dev``.
"""
