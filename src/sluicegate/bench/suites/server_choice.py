"""``bench server-choice``: which ASGI server runs sluicegate fastest here? uvicorn (uvloop+httptools) vs granian.

A preset of ``bench throughput-ab``: the same app (1 worker) under ``sluicegate serve`` (uvicorn) and under
granian, in front of the nginx origin of ``bench throughput``, 2 KB HTML and 200 KB binary, interleaved
rounds; median req/s and proxy CPU µs per request -> ``bench/results/server-choice.json``. Extra arguments
(``--rounds``, ``--duration``, ``--pages``) are passed on.
"""

from __future__ import annotations

from typing import Any

from sluicegate.bench.suites import throughput_ab

VARIANTS = ["sluicegate-w1", "granian-w1"]
DEFAULTS = ["--pages", "page2k.html,page200k.bin", "--rounds", "3", "--duration", "5"]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return throughput_ab.main([*VARIANTS, *DEFAULTS, *(argv or [])], name="server-choice", prog="server-choice",
                              doc=__doc__)
