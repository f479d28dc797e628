"""One HTTP/2 connection from a client: the asyncio protocol around ``h2`` (hyper-h2, sans-IO) serving ASGI.

Owns: the connection's life (server preface, one ASGI task per stream, GOAWAY on drain, idle and
request-head deadlines), flow control both ways (request bodies acknowledged only as the app reads them,
bounded per stream and per connection by the windows we advertise; response DATA sent only into the
client's windows and while the socket drains, a stalled window given up after ``send_timeout``), the
failure rules (an app error before the head: 500; after it, or ``ResponseAborted``: RST_STREAM
INTERNAL_ERROR at once, never END_STREAM on a truncated body; a client RST_STREAM: that stream's
``http.disconnect``), and the defences (``guard.FrameGuard`` before h2 parses a byte: header-block cap,
control-frame and reset budgets -> GOAWAY ENHANCE_YOUR_CALM; concurrent streams over the advertised limit
refused with REFUSED_STREAM; malformed requests reset with PROTOCOL_ERROR; h2's own connection errors
answered with its GOAWAY). Registers itself and its tasks in the worker's registry (``connections``,
``tasks``: uvicorn's ``ServerState`` or any object with those sets) so the worker's drain and abort treat
it like an HTTP/1.1 connection. Must not know about the faces or how the connection was chosen.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import DenialOfServiceError, ProtocolError
from h2.settings import SettingCodes, Settings
from hyperframe.frame import DataFrame, GoAwayFrame

from sluicegate.edge.asgi import ClientGone, ResponseAborted
from sluicegate.server.h2.guard import Calm, FrameGuard
from sluicegate.server.h2.headers import Malformed, parse_request
from sluicegate.server.h2.metrics import H2_GOAWAY, H2_OPEN, H2_RESETS, H2_STREAMS
from sluicegate.server.h2.options import H2Options
from sluicegate.server.h2.stream import Stream

log = logging.getLogger("sluicegate.h2")


def _data_frame_repr(self: DataFrame) -> str:
    return f"<{len(self.data)} bytes>"


# h2 formats repr(frame) of every frame it receives for its trace logger, whether or not anything logs; a DATA
# frame's repr hexlifies its whole payload: 73 us per 16 KiB frame, ~36 ms of CPU per 8 MB request body.
# The payload in a debug string is never needed: its length is enough.
DataFrame._body_repr = _data_frame_repr  # type: ignore[method-assign,assignment]

_500 = b"Internal Server Error\n"
# Unsent bytes a connection may pile up in its socket buffer. DATA is only written while the socket drains;
# what a client that stops reading can still make us write is control frames (PING/SETTINGS ACKs, resets).
MAX_UNSENT = 4 * 1024 * 1024


def _addr(transport: asyncio.BaseTransport, name: str) -> tuple[str, int] | None:
    info = transport.get_extra_info(name)
    if isinstance(info, tuple) and len(info) >= 2:
        return str(info[0]), int(info[1])
    return None


class H2Protocol(asyncio.Protocol):
    def __init__(self, app: Any, options: H2Options, registry: Any) -> None:
        self.app = app
        self.options = options
        self.registry = registry
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.streams: dict[int, Stream] = {}
        self.paused = False
        self.draining = False  # GOAWAY sent (drain) or received: no new streams
        self.closed = False
        self.requests = 0
        self.last_activity = self.loop.time()
        self.head_since: float | None = self.last_activity  # the first request (or an open header block) due
        self._timer: asyncio.TimerHandle | None = None
        self._flush_soon = False
        self._counted = False  # in the open-connections gauge
        o = options
        self.guard = FrameGuard(o.max_header_bytes, o.reset_rate, o.control_frame_rate, self.last_activity)
        self.conn = H2Connection(H2Configuration(
            client_side=False, header_encoding=None, validate_inbound_headers=False,
            normalize_inbound_headers=False, validate_outbound_headers=False, normalize_outbound_headers=False,
        ))
        self.scope_base: dict[str, Any] = {}

    # -- asyncio.Protocol ----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio's classes
        self.registry.connections.add(self)
        H2_OPEN.inc()
        self._counted = True
        o = self.options
        self.scope_base = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "2",
            "scheme": "https" if transport.get_extra_info("sslcontext") else "http", "root_path": "",
            "server": _addr(transport, "sockname"), "client": _addr(transport, "peername"),
        }
        advertised = {
            SettingCodes.MAX_CONCURRENT_STREAMS: o.max_concurrent_streams,
            SettingCodes.INITIAL_WINDOW_SIZE: o.stream_buffer_bytes,
            SettingCodes.MAX_HEADER_LIST_SIZE: o.max_header_bytes,
            SettingCodes.ENABLE_PUSH: 0,
        }
        conn = self.conn
        conn.local_settings = Settings(client=False, initial_values=advertised)
        conn.initiate_connection()
        if o.connection_buffer_bytes > 65535:
            conn.increment_flow_control_window(o.connection_buffer_bytes - 65535)
        # h2 enforces the stream limit itself as a connection error; we refuse streams over the advertised
        # limit one by one (REFUSED_STREAM, RFC 9113 §5.1.2) and leave h2's hard stop at twice it.
        conn.local_settings = Settings(client=False, initial_values={
            **advertised, SettingCodes.MAX_CONCURRENT_STREAMS: 2 * o.max_concurrent_streams})
        conn.decoder.max_header_list_size = o.max_header_bytes
        # Literals without Huffman coding: pure-Python Huffman doubles the cost of a response head for ~20 %
        # fewer header bytes (indexed fields are one byte either way).
        conn.encoder.encode = functools.partial(conn.encoder.encode, huffman=False)  # type: ignore[method-assign]
        self._flush()
        self._arm()

    def data_received(self, data: bytes) -> None:
        now = self.loop.time()
        self.last_activity = now
        try:
            self.guard.feed(data, now)
            events = self.conn.receive_data(data)
        except Calm as exc:
            self._fatal(ErrorCodes.ENHANCE_YOUR_CALM, str(exc))
            return
        except ProtocolError as exc:  # h2 queued its GOAWAY (PROTOCOL_ERROR, COMPRESSION_ERROR, ...)
            log.info("h2 connection error from %s: %s", self._peer(), exc)
            H2_GOAWAY.labels("calm" if isinstance(exc, DenialOfServiceError) else "protocol").inc()
            self._flush()
            self._close()
            return
        new: list[Stream] = []
        try:
            for ev in events:
                self._event(ev, new, now)
        except Calm as exc:
            self._fatal(ErrorCodes.ENHANCE_YOUR_CALM, str(exc))
            return
        if self.guard.in_block:
            if self.head_since is None:
                self.head_since = now
        elif self.requests:
            self.head_since = None
        for stream in new:  # after the whole batch: a stream reset in the same read never starts
            if not stream.closed:
                self._start(stream)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._counted:
            self._counted = False
            H2_OPEN.dec()
        self.closed = True
        self.registry.connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for stream in list(self.streams.values()):
            stream.gone()
        self.streams.clear()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        for stream in self.streams.values():
            stream.wake_sender()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    # -- events ----------------------------------------------------------------------------------------------

    def _event(self, ev: Any, new: list[Stream], now: float) -> None:
        if isinstance(ev, DataReceived):
            stream = self.streams.get(ev.stream_id)
            if stream is None or stream.closed:
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            else:
                stream.body.append((ev.data, ev.flow_controlled_length))
                if ev.stream_ended is not None:
                    stream.body_done = True
                stream.wake()
        elif isinstance(ev, RequestReceived):
            self._request(ev, new, now)
        elif isinstance(ev, StreamEnded | TrailersReceived):
            stream = self.streams.get(ev.stream_id)
            if stream is not None:
                stream.body_done = True
                stream.wake()
        elif isinstance(ev, StreamReset):
            stream = self.streams.pop(ev.stream_id, None)
            H2_RESETS.labels("client").inc()
            if stream is not None:
                stream.gone()
                self._release(stream)
                self._maybe_finish()
        elif isinstance(ev, WindowUpdated):
            if ev.stream_id:
                stream = self.streams.get(ev.stream_id)
                if stream is not None:
                    stream.wake_sender()
            else:
                for stream in self.streams.values():
                    stream.wake_sender()
        elif isinstance(ev, RemoteSettingsChanged):
            if SettingCodes.INITIAL_WINDOW_SIZE in ev.changed_settings:
                for stream in self.streams.values():
                    stream.wake_sender()
        elif isinstance(ev, ConnectionTerminated):
            self.draining = True  # the client's GOAWAY: h2 sends nothing more; streams end as disconnected
            for stream in list(self.streams.values()):
                stream.gone()
            self.streams.clear()
            self._close()

    def _request(self, ev: RequestReceived, new: list[Stream], now: float) -> None:
        sid = ev.stream_id
        if self.draining or len(self.streams) >= self.options.max_concurrent_streams:
            self.guard.charge_reset(now)
            self._reset(sid, ErrorCodes.REFUSED_STREAM)
            H2_RESETS.labels("refused").inc()
            return
        try:
            req = parse_request(ev.headers or [], ev.stream_ended is None)
        except Malformed as exc:
            log.info("h2 malformed request from %s (stream %d): %s", self._peer(), sid, exc)
            self.guard.charge_reset(now)
            self._reset(sid, ErrorCodes.PROTOCOL_ERROR)
            H2_RESETS.labels("malformed").inc()
            return
        self.requests += 1
        scope = dict(self.scope_base)
        scope["method"] = req.method
        scope["path"] = req.path
        scope["raw_path"] = req.raw_path
        scope["query_string"] = req.query
        scope["headers"] = req.headers
        stream = Stream(self, sid, scope)
        if ev.stream_ended is not None:
            stream.body_done = True
        self.streams[sid] = stream
        new.append(stream)
        H2_STREAMS.inc()

    # -- the app ---------------------------------------------------------------------------------------------

    def _start(self, stream: Stream) -> None:
        task = self.loop.create_task(self._run(stream))
        stream.task = task
        tasks = self.registry.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _run(self, stream: Stream) -> None:
        error: BaseException | None = None
        try:
            await self.app(stream.scope, stream.receive, stream.send)
        except asyncio.CancelledError as exc:
            error = exc
            raise
        except Exception as exc:
            error = exc
            if not isinstance(exc, ResponseAborted | ClientGone) and not stream.closed:
                log.error("exception in the ASGI app (h2 stream %d)", stream.id, exc_info=exc)
        finally:
            if not stream.complete and not stream.closed and not self.closed:
                self._failed(stream, error)
            self._forget(stream)

    def _failed(self, stream: Stream, error: BaseException | None) -> None:
        """The app ended without completing its response: 500 before the head, a reset after it."""
        if not stream.started and not isinstance(error, ResponseAborted | asyncio.CancelledError):
            try:
                self.conn.send_headers(stream.id, [(b":status", b"500"), (b"content-type", b"text/plain"),
                                                   (b"content-length", str(len(_500)).encode())])
                self.conn.send_data(stream.id, _500, end_stream=True)  # fits any window: 22 bytes
            except ProtocolError:
                self._reset(stream.id, ErrorCodes.INTERNAL_ERROR)
            else:
                stream.complete = True
                if not stream.body_done:  # the client need not send the rest of its body (§8.1)
                    self._reset(stream.id, ErrorCodes.NO_ERROR)
        else:
            self._reset(stream.id, ErrorCodes.INTERNAL_ERROR)
            H2_RESETS.labels("aborted").inc()
        stream.closed = True
        self._flush()

    def _forget(self, stream: Stream) -> None:
        if self.streams.get(stream.id) is stream:
            del self.streams[stream.id]
        self._release(stream)
        self._maybe_finish()

    def _release(self, stream: Stream) -> None:
        """Body bytes the app never read still hold connection window: give it back (else every unread
        request body would shrink the connection's window for good)."""
        if stream.body and not self.closed:
            unread = sum(n for _, n in stream.body)
            stream.body.clear()
            try:
                self.conn.acknowledge_received_data(unread, stream.id)
            except ProtocolError:
                return
            self._flush_later()

    # -- called by streams -------------------------------------------------------------------------------

    def consumed(self, stream: Stream, n: int) -> None:
        """The app read ``n`` flow-controlled bytes of ``stream``: the client may send that much more."""
        if n and not self.closed:
            try:
                self.conn.acknowledge_received_data(n, stream.id)
            except ProtocolError:
                return
            self._flush_later()

    def send_head(self, stream: Stream, headers: list[tuple[bytes, bytes]]) -> None:
        try:
            self.conn.send_headers(stream.id, headers)
        except ProtocolError:
            stream.gone()
            return
        # The head leaves at the end of this loop turn, before any wait for the origin's body: a body the app
        # sends in the same turn (a small whole answer) shares its write (one TLS record, one syscall).
        self._flush_later()

    async def send_body(self, stream: Stream, data: bytes, end: bool) -> None:
        conn = self.conn
        sid = stream.id
        try:
            while data:
                window = conn.local_flow_control_window(sid)
                if window <= 0 or self.paused:
                    if not await self._wait_sendable(stream):
                        return
                    continue
                # as much as the window allows, in frames of the client's max size, then one write
                if window >= len(data):
                    chunk, data = data, b""
                else:
                    chunk, data = data[:window], data[window:]
                last = end and not data
                size = conn.max_outbound_frame_size
                if len(chunk) <= size:
                    conn.send_data(sid, chunk, end_stream=last)
                else:
                    for off in range(0, len(chunk), size):
                        conn.send_data(sid, chunk[off:off + size], end_stream=last and off + size >= len(chunk))
                if last:
                    end = False
                self._flush()
            if end:
                conn.end_stream(sid)
                self._flush()
        except ProtocolError:  # the stream or connection closed under us (the client's GOAWAY, a reset)
            stream.gone()

    async def _wait_sendable(self, stream: Stream) -> bool:
        """Wait for window and a drained socket; False once the stream is gone or ``send_timeout`` passed."""
        while stream.window_waiter is None and not stream.closed and not self.closed:
            stream.window_waiter = fut = self.loop.create_future()
            try:
                await asyncio.wait_for(fut, self.options.send_timeout)
            except TimeoutError:
                log.info("h2 stream %d from %s: no window for %gs, reset", stream.id, self._peer(),
                         self.options.send_timeout)
                self._reset(stream.id, ErrorCodes.CANCEL)
                H2_RESETS.labels("window").inc()
                stream.gone()
                return False
            finally:
                stream.window_waiter = None
            return not stream.closed and not self.closed
        return False

    def response_done(self, stream: Stream) -> None:
        if not stream.body_done:  # the response is complete; the client need not send the rest (§8.1)
            self._reset(stream.id, ErrorCodes.NO_ERROR)
            stream.closed = True
        self._forget(stream)

    # -- writing and closing ---------------------------------------------------------------------------------

    def _reset(self, sid: int, code: ErrorCodes) -> None:
        try:
            self.conn.reset_stream(sid, code)
        except ProtocolError:
            pass
        self._flush_later()

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.closed and not self.transport.is_closing():
            self.transport.write(data)
            if self.paused and self.transport.get_write_buffer_size() > MAX_UNSENT:
                log.warning("h2 connection from %s cut: over %d bytes unsent (the client does not read)",
                            self._peer(), MAX_UNSENT)
                H2_GOAWAY.labels("write_buffer").inc()
                self.closed = True
                self.registry.connections.discard(self)
                self.transport.abort()

    def _flush_later(self) -> None:
        if not self._flush_soon:
            self._flush_soon = True
            self.loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._flush_soon = False
        self._flush()

    def _goaway(self, code: int) -> None:
        """GOAWAY written by hand: h2 refuses to send anything after its own, and the streams below
        ``last_stream_id`` still have responses to finish."""
        self._flush()
        frame = GoAwayFrame(0, last_stream_id=self.conn.highest_inbound_stream_id, error_code=code)
        if not self.closed and not self.transport.is_closing():
            self.transport.write(frame.serialize())

    def _fatal(self, code: ErrorCodes, reason: str, label: str = "calm") -> None:
        log.warning("h2 connection from %s closed: %s", self._peer(), reason)
        H2_GOAWAY.labels(label).inc()
        self._goaway(code)
        for stream in list(self.streams.values()):
            stream.gone()
            if stream.task is not None:
                stream.task.cancel()
        self.streams.clear()
        self._close()

    def _close(self) -> None:
        # Out of the registry now: the drain waits for requests, not for a TLS peer's close_notify.
        self.registry.connections.discard(self)
        if not self.closed and not self.transport.is_closing():
            self.transport.close()

    def shutdown(self) -> None:
        """Drain (the worker's SIGTERM): GOAWAY(NO_ERROR), finish the streams in flight, then close."""
        if not self.draining:
            self.draining = True
            H2_GOAWAY.labels("drain").inc()
            self._goaway(ErrorCodes.NO_ERROR)
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        if self.draining and not self.streams:
            self._flush()
            self._close()
        elif not self.streams:
            self._arm()

    # -- deadlines -------------------------------------------------------------------------------------------

    def _arm(self) -> None:
        if self._timer is not None or self.closed:
            return
        due = self._due()
        self._timer = self.loop.call_at(due, self._tick)

    def _due(self) -> float:
        due = self.last_activity + self.options.idle_timeout
        if self.head_since is not None:
            due = min(due, self.head_since + self.options.header_timeout)
        return due

    def _tick(self) -> None:
        self._timer = None
        if self.closed:
            return
        now = self.loop.time()
        if self.head_since is not None and now >= self.head_since + self.options.header_timeout:
            self._fatal(ErrorCodes.NO_ERROR, f"no complete request head within {self.options.header_timeout:g}s",
                        "head_timeout")
            return
        if not self.streams and now >= self.last_activity + self.options.idle_timeout:
            H2_GOAWAY.labels("idle").inc()
            self.draining = True
            self._goaway(ErrorCodes.NO_ERROR)
            self._close()
            return
        self._timer = self.loop.call_at(max(self._due(), now + 0.05), self._tick)

    def _peer(self) -> str:
        client = self.scope_base.get("client")
        return f"{client[0]}:{client[1]}" if client else "?"
