"""Pools per authority: one ``OriginPool`` per (scheme, host, port, TLS name), at most ``max_pools`` of them.

For callers that talk to more than one upstream (third-party fetches, LLM providers): the pool for an
authority is made on first use with the options given here and reused after; past ``max_pools`` the least
recently used pool is closed (its idle connections; a request still running on one finishes). Bounded in
memory however many authorities a worker meets. Knows nothing of ASGI or of what the authorities are.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from sluicegate.upstream.http1 import OriginPool

Key = tuple[str, str, int, str]


class Pools:
    def __init__(self, *, max_pools: int = 64, **pool_options: Any) -> None:
        """``pool_options``: the keyword arguments of ``OriginPool`` (connect_timeout, limit, verify_tls, ...)."""
        if max_pools < 1:
            raise ValueError("max_pools must be at least 1")
        self.max_pools = max_pools
        self.pool_options = pool_options
        self._pools: collections.OrderedDict[Key, OriginPool] = collections.OrderedDict()
        self._closing: set[asyncio.Future[None]] = set()

    def __len__(self) -> int:
        return len(self._pools)

    def authorities(self) -> list[Key]:
        """The authorities with a pool now, least recently used first."""
        return list(self._pools)

    def get(self, scheme: str, host: str, port: int, server_name: str | None = None) -> OriginPool:
        """The pool for ``scheme://host:port`` (``server_name``: the TLS name when ``host`` is an address)."""
        key = (scheme, host, port, server_name or "")
        pool = self._pools.get(key)
        if pool is not None:
            self._pools.move_to_end(key)
            return pool
        if len(self._pools) >= self.max_pools:
            _, old = self._pools.popitem(last=False)
            closing = asyncio.ensure_future(old.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        pool = self._pools[key] = OriginPool(scheme, host, port, server_name=server_name, **self.pool_options)
        return pool

    async def close(self) -> None:
        pools = list(self._pools.values())
        self._pools.clear()
        for pool in pools:
            await pool.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
