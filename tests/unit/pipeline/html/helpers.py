"""Shared helpers for the HTML rewriter tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sluicegate.config.origin import Origin
from sluicegate.pipeline import Transformer
from sluicegate.pipeline.hosts import HostRewriter, OriginMatcher

ORIGIN = "https://origin.example.com"
PROXY_HOST = "www.example.com"


def host_rewriter(origin: str = ORIGIN, scheme: str = "https", host: str = PROXY_HOST) -> HostRewriter:
    return OriginMatcher(Origin.parse(origin)).for_request(scheme, host)


def run(make: Callable[[], Transformer], chunks: Iterable[bytes]) -> bytes:
    t = make()
    out = [t.feed(c) for c in chunks]
    out.append(t.finish())
    return b"".join(out)


def splits(data: bytes, sizes: Iterable[int] = (1, 2, 3, 5, 7, 13, 64, 1000)) -> list[list[bytes]]:
    """The input whole and cut into fixed-size pieces of several sizes."""
    out = [[data]]
    for n in sizes:
        out.append([data[i : i + n] for i in range(0, len(data), n)])
    return out


def run_all_splits(make: Callable[[], Transformer], data: bytes) -> bytes:
    """Output for the whole input; asserts every other chunking gives the same bytes."""
    whole = run(make, [data])
    for chunks in splits(data):
        assert run(make, chunks) == whole, f"output differs for {len(chunks[0])}-byte chunks"
    return whole
