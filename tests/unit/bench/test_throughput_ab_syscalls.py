"""``bench throughput-ab``'s system-call count: the proxy tree's read/write syscalls from ``/proc/<pid>/io``."""

from __future__ import annotations

import os
import subprocess
import sys

from sluicegate.bench.suites.throughput_ab import tree_syscalls


def test_counts_a_process_trees_writes_and_reads() -> None:
    r, w = os.pipe()
    child = subprocess.Popen([sys.executable, "-c", "import os, sys\nsys.stdin.read(1)\n"
                              "for _ in range(50): os.write(1, b'x')\nsys.stdin.read(1)\n"],
                             stdin=subprocess.PIPE, stdout=w)
    try:
        assert child.stdin is not None
        reads0, writes0 = tree_syscalls(os.getpid())
        child.stdin.write(b"a")
        child.stdin.flush()
        got = b""
        while len(got) < 50:
            got += os.read(r, 100)
        reads1, writes1 = tree_syscalls(os.getpid())
        # the child (a descendant) made 50 writes; this process a write to its stdin and reads of the pipe
        assert writes1 - writes0 >= 51
        assert reads1 - reads0 >= 2  # the child's read of its stdin, this process's reads of the pipe
        child.stdin.write(b"b")
        child.stdin.close()
    finally:
        child.wait(timeout=10)
        os.close(r)
        os.close(w)
