"""The WebSocket tunnel: both directions of one upgraded connection, relayed frame-aware as bytes arrive.

Each direction passes through a ``wsframes.FrameScanner`` (bytes unchanged, frame boundaries followed, a
message never assembled). The tunnel speaks only to end itself: a close frame to each side whose stream is
at a frame boundary (1009 too big, 1002 broken framing, 1001 idle or shutdown, 1014 to the client when the
origin vanished without a close), then both connections close (unsent bytes get ``_LINGER`` seconds).
``publisher.websocket`` owns the two connections and the handshake; this module sees them only through the
``ClientSide`` / ``OriginSide`` protocols below. Must not know about HTTP.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from prometheus_client import Counter

from sluicegate.observability.metrics import REGISTRY
from sluicegate.publisher import wsframes as wf

WS_BYTES = Counter(
    "sluicegate_websocket_bytes_total",
    "WebSocket bytes relayed (frames as on the wire), by direction (up = client to origin, down)",
    ["direction"],
    registry=REGISTRY,
)
_UP_BYTES = WS_BYTES.labels("up")
_DOWN_BYTES = WS_BYTES.labels("down")
_LINGER = 5.0  # s: a closing side's unsent bytes wait this long for the peer to read them


class ClientSide(Protocol):
    transport: asyncio.Transport | None
    tunnel: Tunnel | None
    gone: bool

    def write(self, data: bytes) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


class OriginSide(Protocol):
    transport: asyncio.Transport | None
    tunnel: Tunnel | None
    eof: bool

    def close(self) -> None: ...


class Tunnel:
    """Both directions of one upgraded connection, relayed frame-aware (see the module docstring)."""

    def __init__(self, client: ClientSide, origin: OriginSide, max_message: int, idle: float,
                 buffer_bytes: int) -> None:
        self.client = client
        self.origin = origin
        self.up = wf.FrameScanner(masked=True, max_message=max_message)  # client -> origin
        self.down = wf.FrameScanner(masked=False, max_message=max_message)  # origin -> client
        self.idle = idle
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.reason = ""
        self.last = self.loop.time()
        self.up_bytes = 0
        self.down_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        for transport in (client.transport, origin.transport):
            if transport is not None:
                transport.set_write_buffer_limits(high=buffer_bytes)

    def start(self, from_origin: bytes, from_client: bytes) -> None:
        self.client.tunnel = self
        self.origin.tunnel = self
        self._timer = self.loop.call_at(self.last + self.idle, self._check_idle)
        if from_origin:
            self.from_origin(from_origin)
        if from_client:
            self.from_client(from_client)
        self.client.resume_reading()
        if self.origin.eof:
            self.origin_gone()
        if self.client.gone:
            self.client_gone()

    def from_client(self, data: bytes) -> None:
        if self.done.done():
            return
        self.last = self.loop.time()
        try:
            out = self.up.feed(data)
        except wf.FrameError as exc:
            self.fail(exc.code, exc.reason, "too_big" if exc.code == wf.CLOSE_TOO_BIG else "protocol")
            return
        if out and self.origin.transport is not None:
            self.origin.transport.write(out)
            self.up_bytes += len(out)
            _UP_BYTES.inc(len(out))

    def from_origin(self, data: bytes) -> None:
        if self.done.done():
            return
        self.last = self.loop.time()
        try:
            out = self.down.feed(data)
        except wf.FrameError as exc:
            self.fail(exc.code, exc.reason, "too_big" if exc.code == wf.CLOSE_TOO_BIG else "protocol")
            return
        if out:
            self.client.write(out)
            self.down_bytes += len(out)
            _DOWN_BYTES.inc(len(out))

    def client_gone(self) -> None:
        if not self.done.done():
            self._end("closed" if self.up.closed else "client_gone")

    def origin_gone(self) -> None:
        if self.done.done():
            return
        if not self.down.closed and self.down.at_boundary:  # no close frame from the origin: say so
            self.client.write(wf.close_frame(wf.CLOSE_BAD_GATEWAY, "origin connection lost", masked=False))
        self._end("closed" if self.down.closed else "origin_gone")

    def _check_idle(self) -> None:
        if self.done.done():
            return
        due = self.last + self.idle
        if self.loop.time() >= due:
            self.fail(wf.CLOSE_GOING_AWAY, "idle timeout", "idle")
        else:
            self._timer = self.loop.call_at(due, self._check_idle)

    def fail(self, code: int, reason: str, why: str) -> None:
        """End the tunnel on the proxy's initiative: a close frame to each side that can take one."""
        if self.done.done():
            return
        if not self.down.closed and self.down.at_boundary:
            self.client.write(wf.close_frame(code, reason, masked=False))
        if not self.up.closed and self.up.at_boundary and self.origin.transport is not None:
            self.origin.transport.write(wf.close_frame(code, reason, masked=True))
        self._end(why)

    def _end(self, reason: str) -> None:
        self.reason = reason
        if self._timer is not None:
            self._timer.cancel()
        # close() sends what is buffered, then FIN: the close frames written above reach the peers; a peer
        # that does not read its buffer within _LINGER is cut off
        for transport in (self.origin.transport, self.client.transport):
            if transport is not None:
                transport.close()
                self.loop.call_later(_LINGER, transport.abort)
        self.done.set_result(None)
