"""The floor of any relay on this machine: a minimal TCP forwarder (uvloop, no parsing, no rewriting).

What it is for: ``bench relay-ttfb --decompose`` measures it beside the proxy, so the added first-body-byte time of
a rewritten page can be split into what any user-space relay in Python pays (one more process on the path: its
wake-ups, two more socket reads and writes, the loop's own turn) and what sluicegate adds on top of that.

How: each accepted client connection is paired with an origin connection opened in advance (one is always kept
ready, as a proxy's warm pool would be: no connect on the measured path); bytes go both ways as they arrive
(``TCP_NODELAY`` on both sides); either side's end closes the other. Nothing is buffered beyond what the
transports hold (the reading side pauses while the other side's write buffer is over its high-water mark).

Run: ``python -m sluicegate.bench.lab.forwarder --port P --to ORIGIN_PORT`` (127.0.0.1). Not a product part:
no limits, no timeouts, loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from typing import Any


class _Side(asyncio.Protocol):
    """One connection; ``peer`` is the other side's protocol (set once both exist)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.early: list[bytes] = []  # bytes that arrived before the peer existed
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def pair(self, peer: _Side) -> None:
        self.peer = peer
        for data in self.early:
            peer.send(data)
        self.early.clear()
        if self.closed:
            peer.close()

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.peer is None:
            self.early.append(data)
        else:
            self.peer.send(data)

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.peer is not None:
            self.peer.close()


class Forwarder:
    def __init__(self, origin_port: int) -> None:
        self.origin_port = origin_port
        self.spare: asyncio.Future[_Side] | None = None

    def _open(self) -> asyncio.Future[_Side]:
        async def connect() -> _Side:
            loop = asyncio.get_running_loop()
            _, up = await loop.create_connection(_Side, "127.0.0.1", self.origin_port)
            return up

        return asyncio.ensure_future(connect())

    def client(self) -> _Side:
        down = _Side()
        spare = self.spare if self.spare is not None else self._open()
        self.spare = self._open()  # the next client's origin connection, opened now

        def paired(fut: asyncio.Future[_Side]) -> None:
            if fut.cancelled() or fut.exception() is not None:
                down.close()
                return
            up = fut.result()
            up.pair(down)
            down.pair(up)

        spare.add_done_callback(paired)
        return down


async def serve(port: int, origin_port: int) -> None:
    fwd = Forwarder(origin_port)
    fwd.spare = fwd._open()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(fwd.client, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> Any:
    ap = argparse.ArgumentParser(prog="python -m sluicegate.bench.lab.forwarder", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--to", type=int, required=True, help="the origin's port on 127.0.0.1")
    args = ap.parse_args(argv)
    import uvloop

    uvloop.run(serve(args.port, args.to))


if __name__ == "__main__":
    main()
