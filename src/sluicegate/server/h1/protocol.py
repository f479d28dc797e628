"""The native HTTP/1.1 connection: an asyncio protocol on httptools (llhttp) serving one ASGI 3 app.

Owns, per client connection: parsing requests (llhttp via ``httptools.HttpRequestParser``; anything it
refuses -- conflicting ``Content-Length``/``Transfer-Encoding``, obs-fold, bad chunk sizes, bad bytes in the
request line or a header -- is answered 400 and the connection closed, and nothing reaches the app), the
ASGI scope (client/server addresses, ``http``/``https``, ``raw_path``, ``query_string``, ``http_version``,
lower-case header names), keep-alive (``[timeouts] client_keepalive`` idle, then close), the request-head
deadline (``[timeouts] client_header`` from the connection's start or a later request's first byte; the
slowloris guard ``server.h1guard`` gives uvicorn) and the head size bound (``ServerState.head_limit``:
431 and close), pipelined requests answered one after the other in order (reading stops while one waits),
the read side's flow control (``pause_reading`` while the app does not take the body: ``cycle``), the
write side's (``pause_writing``/``resume_writing``: ``send`` waits in ``drain``), the graceful ``shutdown``
the worker calls on drain, and handing the connection to another protocol.

Handing off (``hand_off``): the connection's transport is given to another ``asyncio.Protocol``, which
gets ``connection_made(transport)`` and then the bytes read so far. Two users:
  * WebSocket upgrades (``Upgrade: websocket`` + ``Connection: upgrade``) go to ``ServerState.ws_protocol``
    (``publisher.websocket.TunnelProtocol``, the class uvicorn is given as ``ws=``) with the request head
    re-serialised and any bytes after it: upgrades never enter the ASGI app;
  * HTTP/2 (``[server] http2``): the first bytes read are offered to ``ServerState.http2`` (a
    ``server.h2.Http2Switch``) in ONE call, ``take(transport, data, state)``: True = ALPN chose ``h2`` or the
    bytes are the h2c prior-knowledge preface, and the switch has handed the connection to its own protocol
    (this one retires: out of ``connections``, timers stopped); False = HTTP/1.1, parse as usual; None = a
    strict prefix of the 24-byte preface so far: the bytes are kept and offered again with the next read.

Must not know: the app's faces, the config model (``serve`` passes plain values), other connections.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections import deque
from typing import Any

import httptools

from sluicegate.edge.asgi import BODY_WRITE, DISCONNECT_HOOK, OBSERVE_HOOK
from sluicegate.server.h1 import framing as fr
from sluicegate.server.h1.cycle import Cycle

log = logging.getLogger("sluicegate.h1")

_ASGI = {"version": "3.0", "spec_version": "2.3"}
# after a refusal (400, 431) the connection half-closes and reads on, discarding, before it closes: closing with
# unread bytes makes the kernel reset the connection, and a client still sending its (too large) head would lose
# the answer. Bounded in time and bytes (nginx's lingering close, with tighter bounds).
LINGER_S = 2.0
LINGER_BYTES = 1 << 20


class ServerState:
    """What every connection of one worker shares (the shape uvicorn's ``server_state`` has for the
    WebSocket protocol: ``connections``, ``tasks``)."""

    def __init__(
        self, app: Any, *, header_timeout: float, keepalive_timeout: float, head_limit: int,
        ws_protocol: type[asyncio.Protocol] | None = None, http2: Any = None,
    ) -> None:
        self.app = app
        self.header_timeout = header_timeout
        self.keepalive_timeout = keepalive_timeout
        self.head_limit = head_limit
        self.ws_protocol = ws_protocol
        self.http2 = http2  # a server.h2.Http2Switch, or None: HTTP/1.1 only
        self.connections: set[Any] = set()
        self.tasks: set[asyncio.Task[None]] = set()


def _addr(value: Any) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return None


class H1Protocol(asyncio.Protocol):
    def __init__(self, state: ServerState, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.state = state
        self.loop = loop or asyncio.get_running_loop()
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set in connection_made
        self.parser = httptools.HttpRequestParser(self)
        # bytes after a request with "Connection: close" are ignored (the connection closes after its response)
        # instead of failing the request before it: uvicorn's choice too
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.cycle: Cycle | None = None  # the exchange being answered
        self.queue: deque[Cycle] = deque()  # pipelined requests waiting their turn
        self.parsing: Cycle | None = None  # the request whose body the parser is reading
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        self.write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._read_paused = False
        self._closed = False
        self._sniff: bytes | None = b""  # the first bytes until the HTTP/2 switch has decided (None: decided)
        self._in_head = True
        self._head_bytes = 0
        self._heads_done = 0
        self._head_begun = False
        self._idle_since = 0.0
        self._head_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._expect_100 = False
        self._upgrade_ws = False
        self._linger: asyncio.TimerHandle | None = None  # set while a refused connection drains (LINGER_S)
        self._linger_left = 0

    # -- asyncio.Protocol --------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        state = self.state
        state.connections.add(self)
        self.server = _addr(transport.get_extra_info("sockname"))
        self.client = _addr(transport.get_extra_info("peername"))
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
        self._head_timer = self.loop.call_later(state.header_timeout, self._head_expired)

    def data_received(self, data: bytes) -> None:
        if self._linger is not None:  # refused: what still comes is read and dropped, within bounds
            self._linger_left -= len(data)
            if self._linger_left < 0:
                self.transport.close()
            return
        if self._sniff is not None:  # the first bytes: HTTP/2 or not (one call to the switch)
            switch = self.state.http2
            if switch is None:
                self._sniff = None
            else:
                data = self._sniff + data
                verdict = switch.take(self.transport, data, self.state)
                if verdict is None:  # a strict prefix of the 24-byte h2 preface: bounded
                    self._sniff = data
                    return
                self._sniff = None
                if verdict:  # the connection is HTTP/2's now
                    self._retire()
                    return
        self._heads_done = 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgraded(data, exc)
            return
        except httptools.HttpParserError:
            self._refuse(fr.BAD_REQUEST)
            return
        if self._head_begun and self._head_timer is None:  # a head began and is not complete: its deadline runs
            self._head_timer = self.loop.call_later(self.state.header_timeout, self._head_expired)
        # a head still incomplete after a read that completed no head or message: it holds at most what came since
        # (a head that began within this read holds less than the read)
        if self._in_head and not self._heads_done:
            self._head_bytes += len(data)
            if self._head_bytes > self.state.head_limit:
                self._refuse(fr.HEAD_TOO_LARGE)

    def eof_received(self) -> bool | None:
        return None  # the transport closes: connection_lost tells the exchange

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.state.connections.discard(self)
        self._stop_timers()
        if self._linger is not None:
            self._linger.cancel()
        if self.cycle is not None:
            self.cycle.lost()
        for cycle in self.queue:
            cycle.lost()
        self.queue.clear()
        self._release_drain()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._release_drain()

    async def drain(self) -> None:
        if self._drain is None:
            self._drain = self.loop.create_future()
        await self._drain

    def _release_drain(self) -> None:
        waiter = self._drain
        if waiter is not None:
            self._drain = None
            if not waiter.done():
                waiter.set_result(None)

    # -- httptools callbacks -----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._expect_100 = False
        self._upgrade_ws = False
        self._head_begun = True

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self._expect_100 = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._heads_done += 1
        self._head_begun = False
        self._in_head = False
        self._head_bytes = 0
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        parser = self.parser
        method = parser.get_method().decode("ascii")
        http_version = parser.get_http_version()
        if parser.should_upgrade():
            if method == "CONNECT":
                raise ValueError("CONNECT is not served")  # -> HttpParserCallbackError: 400
            if self.state.ws_protocol is not None and self._is_ws_upgrade():
                if self.cycle is not None:  # an upgrade pipelined behind a request: not served
                    raise ValueError("upgrade pipelined behind another request")
                self._upgrade_ws = True
                return
        url = self._url
        if url[:1] == b"/" and b"#" not in url:
            raw_path, _, query = url.partition(b"?")
        else:
            parsed: Any = httptools.parse_url(url)  # (Any: its path/query may be None, its stub says bytes)
            raw_path, query = parsed.path or b"/", parsed.query or b""
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        scope: dict[str, Any] = {
            "type": "http", "asgi": _ASGI, "http_version": http_version, "server": self.server,
            "client": self.client, "scheme": self.scheme, "method": method, "root_path": "", "path": path,
            "raw_path": raw_path, "query_string": query, "headers": self._headers,
        }
        http10 = http_version == "1.0"
        # an HTTP/1.0 client gets one response per connection (as under uvicorn): no keep-alive negotiation
        keep_alive = not http10 and parser.should_keep_alive() and not parser.should_upgrade()
        cycle = Cycle(self, scope, keep_alive=keep_alive, expect_100=self._expect_100, http10=http10)
        scope[DISCONNECT_HOOK] = cycle.watch_disconnect
        scope[OBSERVE_HOOK] = cycle.tally
        scope[BODY_WRITE] = cycle.write_more
        self.parsing = cycle
        if self.cycle is None:
            self._start(cycle)
        else:
            self.queue.append(cycle)
            self._pause_reading()

    def on_body(self, body: bytes) -> None:
        cycle = self.parsing
        if cycle is not None and cycle.feed_body(body):
            self._pause_reading()

    def on_message_complete(self) -> None:
        self._heads_done += 1  # counts as progress: what follows in this read is at most one read's bytes
        self._in_head = True
        self._head_bytes = 0
        cycle = self.parsing
        if cycle is not None:
            self.parsing = None
            cycle.end_body()

    # -- exchanges ---------------------------------------------------------------------------------
    def _start(self, cycle: Cycle) -> None:
        self.cycle = cycle
        task = self.loop.create_task(cycle.run(self.state.app))
        # in the worker's in-flight set (drain counts and cancels it) until ``run`` ends: ``Cycle.run`` takes it out
        # itself (a done-callback cost a loop callback per request). A task cancelled before its first step (only
        # drain's cancel at exit can) stays listed: the process is ending.
        cycle.task = task
        self.state.tasks.add(task)

    def response_done(self, cycle: Cycle) -> None:
        """The cycle's last byte is written (or held for this loop turn)."""
        if cycle is not self.cycle:
            return
        self.cycle = None
        if not cycle.keep_alive:
            self.transport.close()
            return
        if self._closed:
            return
        # an app that answered before reading the whole body: the parser reads and drops the rest
        # (closing with unread bytes would reset the connection under the answer)
        started = False
        if self.queue:
            self._start(self.queue.popleft())
            started = True  # (a flag, not ``self.cycle is None``: mypy narrowed that to None above, and
            # mypyc would check the narrowed type at run time: a pipelined request raised TypeError)
        if not self.queue:
            self._resume_reading()
        if not started:
            # one lazy timer per connection: it re-arms itself from the last response's end when it fires
            self._idle_since = self.loop.time()
            if self._idle_timer is None:
                self._idle_timer = self.loop.call_at(self._idle_since + self.state.keepalive_timeout,
                                                     self._idle_expired)

    def resume_body(self) -> None:
        """The app asked for more body: read again (unless pipelined requests are waiting)."""
        if self._read_paused and not self.queue:
            self._resume_reading()

    def _pause_reading(self) -> None:
        if not self._read_paused and not self._closed:
            self._read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._read_paused and not self._closed:
            self._read_paused = False
            self.transport.resume_reading()

    # -- upgrades, refusals, timers ----------------------------------------------------------------
    def _is_ws_upgrade(self) -> bool:
        upgrade = connection = b""
        for name, value in self._headers:
            if name == b"upgrade":
                upgrade = value.lower()
            elif name == b"connection":
                connection = value.lower()
        return upgrade.strip() == b"websocket" and b"upgrade" in [t.strip() for t in connection.split(b",")]

    def _upgraded(self, data: bytes, exc: httptools.HttpParserUpgrade) -> None:
        if not self._upgrade_ws or self.state.ws_protocol is None:
            # another Upgrade (h2c, ...): the request is served as plain HTTP/1.1 and the connection
            # closes after it (the parser stops at the upgrade; nothing after it can be trusted)
            if self.parsing is not None:
                self.parsing.keep_alive = False
                self.parsing.end_body()
                self.parsing = None
            self._pause_reading()
            return
        offset = exc.args[0] if exc.args and isinstance(exc.args[0], int) else len(data)
        head = [self.parser.get_method(), b" ", self._url, b" HTTP/1.1\r\n"]
        for name, value in self._headers:
            head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n")
        protocol = self.state.ws_protocol(config=None, server_state=self.state, app_state=None)  # type: ignore[call-arg]
        self.hand_off(protocol, b"".join(head) + data[offset:])

    def _retire(self) -> None:
        self._stop_timers()
        self.state.connections.discard(self)
        self._closed = True

    def hand_off(self, protocol: asyncio.Protocol, data: bytes) -> None:
        """Give this connection to ``protocol``: it gets ``connection_made`` and then ``data``."""
        self._retire()
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        if data:
            protocol.data_received(data)

    def _refuse(self, answer: bytes) -> None:
        """A request the parser (or a bound) refused: answer and close, unless a response is on the wire."""
        self._stop_timers()
        if self.cycle is None or not self.cycle.started:
            transport = self.transport
            if not transport.is_closing():
                transport.write(answer)
                if self._closed or not transport.can_write_eof():  # TLS: no half-close
                    transport.close()
                    return
                transport.write_eof()  # the answer, then FIN; the client's remaining bytes are drained
                self._linger_left = LINGER_BYTES
                self._linger = self.loop.call_later(LINGER_S, transport.close)
                self._resume_reading()
        else:  # mid-response: finish it, then close
            self.cycle.keep_alive = False
            self.queue.clear()
            self._pause_reading()

    def shutdown(self) -> None:
        """Drain: an idle connection closes now, a busy one after its response."""
        if self.cycle is None and not self.queue:
            self.transport.close()
        else:
            if self.cycle is not None:
                self.cycle.keep_alive = False
            for cycle in self.queue:
                cycle.keep_alive = False

    def _stop_timers(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.cycle is None:
            if not self.transport.is_closing():
                self.transport.close()
        else:  # a late next head while a response is on the wire: close after that response
            self.shutdown()
            self._pause_reading()

    def _idle_expired(self) -> None:
        self._idle_timer = None
        if self.cycle is not None or self.queue or self._head_begun or self.transport.is_closing():
            return  # busy (the response's end re-arms it) or a head is arriving (its deadline runs)
        due = self._idle_since + self.state.keepalive_timeout
        if self.loop.time() < due - 0.001:
            self._idle_timer = self.loop.call_at(due, self._idle_expired)
        else:
            self.transport.close()
