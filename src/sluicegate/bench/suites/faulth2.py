"""The fault suite's HTTP/2 client: many streams multiplexed on few h2c connections, each judged by its bytes.

``h2_fetch_many(port, host, paths, conns)`` opens ``conns`` cleartext HTTP/2 connections (prior knowledge) and
spreads the GETs over them, never more streams at once than the server's ``SETTINGS_MAX_CONCURRENT_STREAMS``.
Each stream gets the same verdicts as ``faultnet.fetch``: **exact** (END_STREAM after exactly the origin's bytes),
**failed** (RST_STREAM, GOAWAY or a closed connection before END_STREAM, or an error status: what an h2 client
detects), **corrupted** (END_STREAM after wrong bytes) or **lost** (nothing within the time limit).
``rapid_reset(port, host, n)`` sends ``n`` HEADERS + RST_STREAM pairs at once and returns the GOAWAY error code.
Must not know the proxy's internals: it speaks HTTP/2 to the public port.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
)
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes

from sluicegate.bench.suites.faultnet import Outcome, _Body, expected_for

_WINDOW = 1 << 24


class _Stream:
    __slots__ = ("checker", "done", "length", "out", "path")

    def __init__(self, path: str, loop_time: float) -> None:
        self.path = path
        parts = path.strip("/").split("/")
        self.checker = _Body(None, big=int(parts[1])) if parts[0] == "big" else _Body(expected_for(path))
        self.out = Outcome("lost")
        self.out.seconds = loop_time  # the start, until the end is known
        self.length: int | None = None
        self.done = False


async def _one_connection(port: int, host: str, paths: list[str], timeout: float) -> list[Outcome]:
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW})
    conn.increment_flow_control_window(_WINDOW)
    writer.write(conn.data_to_send())
    streams: dict[int, _Stream] = {}
    results: list[_Stream] = []
    queue = list(reversed(paths))
    limit = 100
    open_now = 0

    def start_more() -> None:
        nonlocal open_now
        while queue and open_now < limit:
            path = queue.pop()
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", host.encode()),
                                    (b":path", path.encode())], end_stream=True)
            st = _Stream(path, loop.time())
            streams[sid] = st
            results.append(st)
            open_now += 1

    def finish(st: _Stream, verdict: str, detail: str = "") -> None:
        nonlocal open_now
        if st.done:
            return
        st.done = True
        open_now -= 1
        st.out.verdict, st.out.detail, st.out.got = verdict, detail, st.checker.got
        st.out.seconds = loop.time() - st.out.seconds

    start_more()
    writer.write(conn.data_to_send())
    try:
        async with asyncio.timeout(timeout):
            while queue or open_now:
                data = await reader.read(1 << 20)
                if not data:
                    break
                try:
                    events = conn.receive_data(data)
                except ProtocolError:
                    break
                for ev in events:
                    st = streams.get(getattr(ev, "stream_id", 0) or 0)
                    if isinstance(ev, ResponseReceived) and st is not None:
                        hdrs = dict(ev.headers or [])
                        st.out.status = int(hdrs.get(b":status", b"0"))
                        st.out.first_byte_s = loop.time() - st.out.seconds
                        if b"content-length" in hdrs:
                            st.length = int(hdrs[b"content-length"])
                        if st.out.status >= 500 or st.out.status != 200:
                            finish(st, "failed", f"status {st.out.status}")
                    elif isinstance(ev, DataReceived) and st is not None:
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                        if not st.done:
                            st.checker.feed(ev.data)
                    elif isinstance(ev, StreamEnded) and st is not None:
                        if st.length is not None and st.checker.got != st.length:
                            finish(st, "failed", "END_STREAM before content-length")
                        elif st.checker.exact():
                            finish(st, "exact")
                        elif st.checker.error_event():
                            finish(st, "failed", "stream ended with an error event")
                        else:
                            finish(st, "corrupted", f"END_STREAM after {st.checker.got} bytes, not the origin's")
                    elif isinstance(ev, StreamReset) and st is not None:
                        finish(st, "failed", f"RST_STREAM {int(ev.error_code)}")
                    elif isinstance(ev, RemoteSettingsChanged):
                        cs = ev.changed_settings.get(SettingCodes.MAX_CONCURRENT_STREAMS)
                        if cs is not None:
                            limit = min(100, cs.new_value)
                    elif isinstance(ev, ConnectionTerminated):
                        for s in streams.values():
                            finish(s, "failed", f"GOAWAY {int(ev.error_code or 0)}")
                        queue.clear()
                if not queue and not open_now:
                    break
                start_more()
                writer.write(conn.data_to_send())
        for s in results:
            finish(s, "failed", "connection closed before END_STREAM")
    except TimeoutError:
        for s in results:
            if not s.done:
                s.out.detail, s.out.got = f"nothing for {timeout:g}s", s.checker.got
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return [s.out for s in results] + [Outcome("lost", detail="never sent") for _ in queue]


async def h2_fetch_many(port: int, host: str, paths: list[str], conns: int = 1,
                        timeout: float = 60.0) -> list[Outcome]:
    parts: list[list[str]] = [paths[i::conns] for i in range(conns)]
    done = await asyncio.gather(*(_one_connection(port, host, p, timeout) for p in parts if p))
    return [o for group in done for o in group]


async def rapid_reset(port: int, host: str, n: int) -> dict[str, Any]:
    """``n`` HEADERS + RST_STREAM(CANCEL) pairs written at once; the server's answer (GOAWAY code, or None)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    for _ in range(n):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", host.encode()),
                                (b":path", b"/body/65536")], end_stream=True)
        conn.reset_stream(sid, 8)
    code: int | None = None
    try:
        writer.write(conn.data_to_send())
        async with asyncio.timeout(10):
            while data := await reader.read(1 << 20):
                try:
                    events = conn.receive_data(data)
                except ProtocolError:
                    break
                for ev in events:
                    if isinstance(ev, ConnectionTerminated):
                        code = int(ev.error_code or 0)
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()
    return {"goaway": code}
