"""Baseline for the throughput bench: the usual bare Python relay (uvicorn + aiohttp), nothing of sluicegate in it.

A minimal raw-ASGI streaming relay (the ``asgi_aiohttp`` app of ``../shared/reference/stack-measurements.md``):
one pooled aiohttp ``ClientSession`` per process, request headers forwarded minus hop-by-hop, status and
response headers passed through (Content-Length kept), body relayed chunk by chunk as ``readany()`` yields it.
No gate, no rewriting, no header rules, no timeouts, no disconnect watch, no metrics. Run under the same server
settings as ``sluicegate serve`` (uvicorn, uvloop, httptools, no access log, no server/date header). Until
2026-11-23 sluicegate relayed through aiohttp too, and "sluicegate minus baseline" was the cost of its own
per-request work; since it uses its own origin client (``upstream/http1.py``, see docs/stack.md) the baseline is
the reference "what a minimal relay on the common Python stack does", which sluicegate now beats.

Run: ``python -m sluicegate.bench.suites.baseline --port P --origin http://127.0.0.1:PORT``.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import uvicorn

HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
                 b"transfer-encoding", b"upgrade", b"host"})
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Relay:
    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if self.session is None:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=512, limit_per_host=0, keepalive_timeout=30),
                auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5), read_bufsize=256 * 1024)
        headers, has_body = [], False
        for k, v in scope["headers"]:
            if k in HOP:
                has_body = has_body or k == b"transfer-encoding"
                continue
            has_body = has_body or (k == b"content-length" and v != b"0")
            headers.append((k.decode("latin-1"), v.decode("latin-1")))
        target = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        async with self.session.request(scope["method"], self.origin + target, headers=headers,
                                        data=_body(receive) if has_body else None, allow_redirects=False) as resp:
            out = [(k, v) for k, v in resp.raw_headers if k.lower() not in HOP]
            await send({"type": "http.response.start", "status": resp.status, "headers": out})
            while chunk := await resp.content.readany():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        msg = await receive()
        if msg["type"] != "http.request":
            return
        if body := msg.get("body", b""):
            yield body
        if not msg.get("more_body", False):
            return


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--origin", required=True)
    args = ap.parse_args()
    uvicorn.run(Relay(args.origin), host="127.0.0.1", port=args.port, loop="uvloop", http="httptools",
                lifespan="on", access_log=False, server_header=False, date_header=False, log_level="warning",
                backlog=2048, timeout_keep_alive=30)
