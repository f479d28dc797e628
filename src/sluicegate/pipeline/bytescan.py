"""Byte classes and the byte-loop search the compiled scanners share (HTML stages, host spans).

Owns: HTML whitespace and ASCII letters as byte tests (``is_ws``, ``is_alpha``) and
``find_bytes``, a ``bytes.find`` by a byte loop (compiled, a method call costs more than a loop
over a tag's few dozen bytes). Must not know tokens, tags, handlers or hosts: bytes only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Native 64-bit ints for the byte-loop indices when compiled (mypyc: no tagged-int checks,
    # ~25% faster scans); annotations only, so the interpreted modules never import it.
    from mypy_extensions import i64


def is_ws(c: int) -> bool:
    """HTML whitespace (tab, LF, FF, CR, space)."""
    return c == 0x20 or c == 0x0A or c == 0x09 or c == 0x0C or c == 0x0D


def is_alpha(c: int) -> bool:
    """An ASCII letter."""
    return 0x61 <= (c | 0x20) <= 0x7A


def find_bytes(buf: bytes, sub: bytes, start: i64, end: i64) -> i64:
    """``buf.find(sub, start, end)`` (``sub`` non-empty, ``0 <= start``, ``end <= len(buf)``) by a
    byte loop: compiled, a method call costs more than this loop over a tag's few dozen bytes."""
    n: i64 = len(sub)
    c0 = sub[0]
    last: i64 = end - n
    i: i64 = start
    while i <= last:
        if buf[i] == c0:
            j: i64 = 1
            while j < n and buf[i + j] == sub[j]:
                j += 1
            if j == n:
                return i
        i += 1
    return -1
