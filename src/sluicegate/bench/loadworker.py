"""Worker side of ``bench load``: one process's event loop of keep-alive connections on raw asyncio protocols.

Every connection sends one request, parses the response with a minimal HTTP/1.1 parser (Content-Length,
chunked, close-delimited), records the latency and sends the next one; errors are counted by kind (connect,
timeout, read, protocol, http_4xx, http_5xx). ``_worker_entry`` runs in a spawned process and sends its
figures (and its own CPU time) back over a pipe; ``load`` (the parent side) merges them. The built-in
trivial 2 KB server of ``bench load --calibrate`` lives here too (same protocol layer, also a child process).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import socket
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, cast

from sluicegate.bench.probe import Target, build_request

MAX_SAMPLES = 20000  # latency samples kept in the saved JSON (uniform reservoir over the whole run)


@dataclass
class LoadSettings:
    url: str
    concurrency: int = 64
    duration: float | None = 10.0
    requests: int | None = None
    workers: int = 1
    timeout: float = 10.0
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    warmup: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "concurrency": self.concurrency,
            "duration_s": self.duration,
            "requests": self.requests,
            "workers": self.workers,
            "timeout_s": self.timeout,
            "method": self.method,
            "headers": self.headers,
            "body_bytes": len(self.body),
            "warmup_s": self.warmup,
        }


def _request_bytes(settings: LoadSettings) -> bytes:
    target = Target.parse(settings.url)
    if target.scheme != "http":
        raise ValueError("bench load measures plain http:// URLs (terminate TLS in front of it)")
    raw = build_request(target, settings.method, {"Accept-Encoding": "identity", **settings.headers},
                        settings.body)
    # build_request asks for Connection: close (one-shot probes); the load generator keeps connections.
    return raw.replace(b"\r\nConnection: close\r\n", b"\r\nConnection: keep-alive\r\n", 1)


# ----------------------------------------------------------------------------------------------- worker side


class _Stats:
    def __init__(self, start: float, window_end: float | None) -> None:
        self.start = start
        self.window_end = window_end  # --duration: completions after it do not count for req/s
        self.in_window = 0
        self.latencies = array("d")
        self.bytes = 0
        self.errors: dict[str, int] = {}
        self.statuses: dict[int, int] = {}
        self.per_second: list[int] = []
        self.connects = 0
        self.done = 0

    def ok(self, latency: float, status: int, nbytes: int, now: float) -> None:
        self.latencies.append(latency)
        self.bytes += nbytes
        self.done += 1
        if self.window_end is None or now <= self.window_end:
            self.in_window += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status >= 400:
            kind = f"http_{status // 100}xx"
            self.errors[kind] = self.errors.get(kind, 0) + 1
        sec = int(now - self.start)
        ps = self.per_second
        while len(ps) <= sec:
            ps.append(0)
        ps[sec] += 1

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class _Budget:
    """Shared by the connections of one worker: may another request start?"""

    def __init__(self, requests: int | None, deadline: float | None) -> None:
        self.left = requests
        self.deadline = deadline
        self.stopped = False

    def take(self) -> bool:
        if self.stopped:
            return False
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            self.stopped = True
            return False
        if self.left is not None:
            if self.left <= 0:
                self.stopped = True
                return False
            self.left -= 1
        return True


_HEAD_END = b"\r\n\r\n"


class _Conn(asyncio.Protocol):
    """One keep-alive connection; the response parser lives in ``data_received``."""

    def __init__(self, owner: _Client) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.t0 = 0.0
        self.in_flight = False
        self.status = 0
        self.remaining = -1  # body bytes left; -1 = reading headers
        self.chunked = False
        self.until_close = False
        self.keep = True
        self.nbytes = 0
        self.closed = asyncio.get_running_loop().create_future()

    # -- protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # pragma: no cover
                pass
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_flight:
            if self.until_close and self.remaining == -2:
                self._complete()
            else:
                self.owner.stats.error("read")
        self.in_flight = False
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        if not self.in_flight:
            self.owner.stats.error("protocol")  # bytes nobody asked for
            self._abort()
            return
        self.buf = self.buf + data if self.buf else data
        try:
            self._parse()
        except (ValueError, IndexError):
            self.owner.stats.error("protocol")
            self.in_flight = False
            self._abort()

    # -- request/response cycle
    def send(self) -> None:
        if not self.owner.budget.take() or self.transport is None:
            self._close()
            return
        self.in_flight = True
        self.remaining = -1
        self.nbytes = 0
        self.t0 = time.perf_counter()
        self.transport.write(self.owner.request)

    def _parse(self) -> None:
        while True:
            if self.remaining == -1:
                end = self.buf.find(_HEAD_END)
                if end < 0:
                    if len(self.buf) > 65536:
                        raise ValueError("header block too large")
                    return
                head = self.buf[:end].lower()
                self.buf = self.buf[end + 4 :]
                self.status = int(head[9:12])
                self.keep = head[5:8] == b"1.1"
                if b"\r\nconnection:" in head:
                    conn = head.split(b"\r\nconnection:", 1)[1].split(b"\r\n", 1)[0]
                    if b"close" in conn:
                        self.keep = False
                    elif b"keep-alive" in conn:
                        self.keep = True
                if 100 <= self.status < 200:
                    continue  # interim response: the real one follows
                self.chunked = False
                self.until_close = False
                cl = head.find(b"\r\ncontent-length:")
                if self.owner.head_only or self.status in (204, 304):
                    self.remaining = 0
                elif cl >= 0:
                    self.remaining = int(head[cl + 17 :].split(b"\r\n", 1)[0])
                elif b"chunked" in head and b"\r\ntransfer-encoding:" in head:
                    self.chunked = True
                    self.remaining = -3
                else:
                    self.until_close = True
                    self.keep = False
                    self.remaining = -2
            if self.remaining >= 0 and not self.chunked:
                n = min(self.remaining, len(self.buf))
                self.nbytes += n
                self.remaining -= n
                self.buf = self.buf[n:]
                if self.remaining:
                    return
                self._complete()
                return
            if self.remaining == -2:  # close-delimited body
                self.nbytes += len(self.buf)
                self.buf = b""
                return
            # chunked: -3 = expecting a size line, >= 0 handled above only for plain bodies
            if not self._parse_chunks():
                return
            self._complete()
            return

    def _parse_chunks(self) -> bool:
        """Consume chunked framing from ``buf``; True when the last chunk and trailers are in."""
        while True:
            if self.remaining == -3:  # size line
                nl = self.buf.find(b"\r\n")
                if nl < 0:
                    return False
                size = int(self.buf[:nl].split(b";", 1)[0], 16)
                self.buf = self.buf[nl + 2 :]
                self.remaining = -4 if size == 0 else size + 2  # data + CRLF
            elif self.remaining == -4:  # trailers until an empty line
                nl = self.buf.find(b"\r\n")
                if nl < 0:
                    return False
                line = self.buf[:nl]
                self.buf = self.buf[nl + 2 :]
                if not line:
                    return True
            else:
                n = min(self.remaining, len(self.buf))
                self.nbytes += max(0, min(n, self.remaining - 2))
                self.remaining -= n
                self.buf = self.buf[n:]
                if self.remaining:
                    return False
                self.remaining = -3

    def _complete(self) -> None:
        now = time.perf_counter()
        self.in_flight = False
        self.owner.stats.ok(now - self.t0, self.status, self.nbytes, now)
        if self.buf and self.remaining != -2:
            self.owner.stats.error("protocol")
            self._abort()
            return
        if self.keep:
            self.send()
        else:
            self._close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def check_timeout(self, now: float, timeout: float) -> None:
        if self.in_flight and now - self.t0 > timeout:
            self.in_flight = False
            self.owner.stats.error("timeout")
            self._abort()


class _Client:
    def __init__(self, settings: LoadSettings, budget: _Budget, stats: _Stats) -> None:
        self.settings = settings
        self.budget = budget
        self.stats = stats
        self.request = _request_bytes(settings)
        self.head_only = settings.method.upper() == "HEAD"
        target = Target.parse(settings.url)
        self.host, self.port = target.host, target.port
        self.conns: set[_Conn] = set()

    async def connection_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.budget.stopped:
            if self.budget.deadline is not None and time.perf_counter() >= self.budget.deadline:
                break
            if self.budget.left is not None and self.budget.left <= 0:
                break
            try:
                _tr, conn = await loop.create_connection(lambda: _Conn(self), self.host, self.port)
            except OSError:
                self.stats.error("connect")
                if self.budget.left is not None:
                    self.budget.take()  # a failed attempt uses up one request of --requests
                await asyncio.sleep(0.05)
                continue
            self.stats.connects += 1
            self.conns.add(conn)
            await conn.closed
            self.conns.discard(conn)

    async def watchdog(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            now = time.perf_counter()
            for conn in list(self.conns):
                conn.check_timeout(now, self.settings.timeout)


async def _worker_main(
    settings: LoadSettings, connections: int, requests: int | None, start_at: float,
    progress: Any | None,
) -> dict[str, Any]:
    while (delay := start_at - time.time()) > 0:
        await asyncio.sleep(min(delay, 0.05))
    t_start = time.perf_counter()
    deadline = t_start + settings.duration if settings.duration is not None else None
    stats = _Stats(t_start, deadline)
    client = _Client(settings, _Budget(requests, deadline), stats)
    cpu0 = time.process_time()

    async def publish() -> None:
        while True:
            await asyncio.sleep(0.1)
            if progress is not None:
                progress.value = stats.done

    tasks = [asyncio.ensure_future(client.connection_loop()) for _ in range(connections)]
    helpers = [asyncio.ensure_future(client.watchdog()), asyncio.ensure_future(publish())]
    try:
        if deadline is not None:
            await asyncio.wait(tasks, timeout=max(0.0, deadline - time.perf_counter()) + settings.timeout)
            client.budget.stopped = True
            for conn in list(client.conns):
                if conn.in_flight:  # still unanswered at the end: a timeout only if it exceeded it
                    conn.in_flight = False
                    conn._abort()
            await asyncio.wait(tasks, timeout=1.0)
        else:
            await asyncio.gather(*tasks)
    finally:
        for task in tasks + helpers:
            task.cancel()
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - t_start
    elapsed = settings.duration if deadline is not None else time.perf_counter() - t_start
    if progress is not None:
        progress.value = stats.done
    return {
        "latencies": stats.latencies.tobytes(),
        "bytes": stats.bytes,
        "errors": stats.errors,
        "statuses": stats.statuses,
        "per_second": stats.per_second,
        "connects": stats.connects,
        "done": stats.done,
        "in_window": stats.in_window,
        "elapsed": elapsed,
        "cpu": cpu,
        "wall": wall,
    }


def _install_fast_loop() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def _worker_entry(
    conn: Connection, settings: LoadSettings, connections: int, requests: int | None,
    start_at: float, progress: Any | None,
) -> None:
    loop_name = _install_fast_loop()
    try:
        out = asyncio.run(_worker_main(settings, connections, requests, start_at, progress))
        out["loop"] = loop_name
        conn.send(out)
    except BaseException as exc:  # report, never hang the parent
        conn.send({"fatal": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


# ----------------------------------------------------------------------------------------------- calibration

_TRIVIAL_BODY = (b"<!doctype html><html><body>" + b"x" * 2000 + b"</body></html>\n")[:2048]


def _trivial_response() -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
        + str(len(_TRIVIAL_BODY)).encode()
        + b"\r\n\r\n"
        + _TRIVIAL_BODY
    )


class _TrivialServer(asyncio.Protocol):
    RESPONSE = _trivial_response()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        n = self.buf.count(_HEAD_END)
        if n:
            self.buf = self.buf[self.buf.rfind(_HEAD_END) + 4 :]
            self.transport.write(self.RESPONSE * n)


def _serve_trivial(sock: socket.socket) -> None:
    _install_fast_loop()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_TrivialServer, sock=sock)
        async with server:
            await server.serve_forever()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:  # pragma: no cover
        pass


def start_trivial_server(processes: int = 1) -> tuple[str, Callable[[], None]]:
    """Start the fixed 2 KB-response server (``processes`` processes on one socket); returns URL, stop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_serve_trivial, args=(sock,), daemon=True) for _ in range(processes)]
    for proc in procs:
        proc.start()
    sock.close()

    def stop() -> None:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():  # pragma: no cover
                proc.kill()

    return f"http://127.0.0.1:{port}/", stop
