"""The one origin library shared by the tests, the benchmarks and the demo.

``content`` generates the pages (realistic link-heavy HTML of any size, trickled gzip'd HTML); ``fast`` is
the raw asyncio origin the benchmarks measure against (``python -m sluicegate.dev.origin.fast``).
"""
