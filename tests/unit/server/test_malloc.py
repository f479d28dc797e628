"""``server.malloc``: the worker's glibc thresholds keep large short-lived buffers from being faulted in anew per
request (the 200 KB PassThrough case: three ~300 KB buffers per request, freed at its end)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from sluicegate.server import malloc

_PROBE = """
import resource, sys
from sluicegate.server import malloc
if sys.argv[1] == "tuned":
    assert malloc.tune({}) == "set", malloc.tune({})
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    a = bytes(300_000)
    del a
f0 = faults()
for _ in range(200):  # a request's large buffers, then their release
    a = b"x" * 300_000
    b = b"y" * 300_000
    c = b"z" * 300_000
    del a, b, c
print(faults() - f0)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True, timeout=60)
    return int(out.stdout.strip())


def test_large_buffers_are_reused_not_faulted_in_per_request() -> None:
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's mallopt only")
    default, tuned = _faults("default"), _faults("tuned")
    assert default > 5_000, default  # the case is real: ~180 page faults per iteration under glibc's defaults
    assert tuned < default / 20, (tuned, default)


def test_an_operators_malloc_variables_win() -> None:
    for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_"):
        assert malloc.tune({name: "131072"}) == "left to the environment's MALLOC_* settings"
