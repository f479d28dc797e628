"""Cutting a page's ``__next_f`` pushes into many small ones (test helper, as Next.js may chunk)."""

from __future__ import annotations

import re

from sluicegate.pipeline.flight.inline import parse_pushes
from tests.unit.pipeline.flight.helpers import push_script

SCRIPT = re.compile(rb"<script[^>]*>(.*?)</script>", re.S)


def inline_stream(html: bytes) -> bytes:
    """The Flight bytes the browser assembles from a page's ``__next_f`` pushes."""
    out = b""
    for m in SCRIPT.finditer(html):
        if b"__next_f" in m.group(1):
            out += b"".join(lit.data for lit in parse_pushes(m.group(1).decode()))
    return out


def resplit_pushes(html: bytes, every: int) -> bytes:
    """The same page with each ``__next_f`` data push cut into many (as Next.js may chunk a
    stream), so ``T`` headers and their content land in different scripts."""
    out = []
    pos = 0
    for m in SCRIPT.finditer(html):
        body = m.group(1)
        lits = parse_pushes(body.decode()) if b"__next_f.push([1" in body else []
        if len(lits) != 1 or lits[0].kind != 1:
            continue
        data = lits[0].data
        out.append(html[pos : m.start()])
        start = 0
        while start < len(data):
            end = min(len(data), start + every)
            while end < len(data) and (data[end] & 0xC0) == 0x80:  # whole characters per push
                end += 1
            out.append(b"<script>" + push_script(data[start:end]) + b"</script>")
            start = end
        pos = m.end()
    out.append(html[pos:])
    return b"".join(out)
