"""server/h2's connection in-process (an h2 client on one side, a recording transport on the other): the rules that
need exact control of what the app reads and when, which the faces through a real server never show."""

from __future__ import annotations

import asyncio
from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, ResponseReceived, StreamEnded, StreamReset, WindowUpdated

from sluicegate.server.h2.connection import H2Protocol
from sluicegate.server.h2.options import H2Options


class Registry:
    def __init__(self) -> None:
        self.connections: set[Any] = set()
        self.tasks: set[Any] = set()


class Wire:
    def __init__(self) -> None:
        self.out = bytearray()
        self.closing = False

    def write(self, data: bytes) -> None:
        self.out += data

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1), "sockname": ("127.0.0.1", 2)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return 0


class Pair:
    def __init__(self, app: Any, **options: Any) -> None:
        self.wire = Wire()
        self.server = H2Protocol(app, H2Options(**options), Registry())
        self.server.connection_made(self.wire)  # type: ignore[arg-type]
        self.client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.client.initiate_connection()
        self.events: list[Any] = []
        self.pump()

    def pump(self) -> None:
        out = self.client.data_to_send()
        if out:
            self.server.data_received(out)
        if self.wire.out:
            data = bytes(self.wire.out)
            self.wire.out.clear()
            self.events += self.client.receive_data(data)
            more = self.client.data_to_send()
            if more:
                self.server.data_received(more)

    async def settle(self) -> None:
        for _ in range(20):
            await asyncio.sleep(0)
            self.pump()

    def post(self, body: bytes, end: bool = True) -> int:
        sid = self.client.get_next_available_stream_id()
        self.client.send_headers(sid, [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"a.test"),
                                       (b":path", b"/up")])
        for off in range(0, len(body), 16384):
            self.client.send_data(sid, body[off:off + 16384], end_stream=end and off + 16384 >= len(body))
        self.pump()
        return sid


async def test_unread_request_bodies_give_the_connection_window_back() -> None:
    async def ignores_body(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    p = Pair(ignores_body, connection_buffer_bytes=65535, stream_buffer_bytes=65535)
    for _ in range(4):  # 4 x 60 KB, never read by the app, through a 64 KiB connection window
        assert p.client.outbound_flow_control_window >= 60_000
        p.post(b"u" * 60_000)
        await p.settle()
    assert [e.stream_id for e in p.events if isinstance(e, StreamEnded)] == [1, 3, 5, 7]
    assert sum(e.delta for e in p.events if isinstance(e, WindowUpdated) and e.stream_id == 0) >= 180_000


async def test_body_acknowledged_only_as_the_app_reads() -> None:
    gate = asyncio.Event()
    got = bytearray()

    async def slow_reader(scope: Any, receive: Any, send: Any) -> None:
        await gate.wait()
        while True:
            m = await receive()
            got.extend(m.get("body", b""))
            if not m.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok", "more_body": False})

    p = Pair(slow_reader, stream_buffer_bytes=16384, connection_buffer_bytes=65535)
    await p.settle()
    sid = p.client.get_next_available_stream_id()
    p.client.send_headers(sid, [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"a.test"),
                                (b":path", b"/up")])
    p.client.send_data(sid, b"x" * 16384)
    p.pump()
    await p.settle()
    assert p.client.local_flow_control_window(sid) == 0  # nothing read: no window given back
    assert not any(isinstance(e, WindowUpdated) and e.stream_id == sid for e in p.events)
    gate.set()
    await p.settle()
    assert p.client.local_flow_control_window(sid) > 0  # the app read: window opened again
    p.client.send_data(sid, b"y" * 100, end_stream=True)
    p.pump()
    await p.settle()
    assert bytes(got) == b"x" * 16384 + b"y" * 100
    assert any(isinstance(e, ResponseReceived) for e in p.events)


async def test_error_before_the_head_is_500_and_after_it_a_reset() -> None:
    async def fails(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/late":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise RuntimeError("boom")

    p = Pair(fails)
    for path in (b"/early", b"/late"):
        sid = p.client.get_next_available_stream_id()
        p.client.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a.test"),
                                    (b":path", path)], end_stream=True)
        p.pump()
        await p.settle()
    statuses = {e.stream_id: dict(e.headers)[b":status"] for e in p.events if isinstance(e, ResponseReceived)}
    assert statuses == {1: b"500", 3: b"200"}
    assert [e.stream_id for e in p.events if isinstance(e, StreamEnded)] == [1]  # never END_STREAM on /late
    assert [(e.stream_id, int(e.error_code)) for e in p.events if isinstance(e, StreamReset)] == [(3, 2)]
    assert b"part" in b"".join(e.data for e in p.events if isinstance(e, DataReceived) and e.stream_id == 3)
