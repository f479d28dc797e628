"""The fault suite's network pieces: a misbehaving origin, a fault-injecting TCP proxy, an exact-bytes checker.

* ``FaultyOrigin``: a raw asyncio HTTP/1.1 origin (keep-alive) whose paths each misbehave one way: exact
  bodies (``/body/N``, ``/page/N``, ``/chunked/N``), a Content-Length longer or shorter than what is sent, a
  chunked body without its last chunk, garbage framing, a 1 byte/s trickle, an SSE stream, a 429. Bodies are a
  fixed pattern (``body(n)``), so the checker knows every byte without keeping them.
* ``FaultProxy``: TCP between sluicegate and the origin; the response direction of every connection obeys the
  current ``mode``: pass, reset (RST) after N bytes, stall after N bytes, trickle (1 byte per interval).
* ``fetch``: one request on a fresh connection, its response read with HTTP/1.1 framing and judged:
  ``exact`` (complete and every byte right), ``failed`` (visibly: an error status from the proxy, or the
  connection ended before the framing said the body was complete), ``corrupted`` (complete-looking, wrong
  bytes) or ``lost`` (nothing, not even a close, within the time limit).
Must not know the proxy's internals: it judges what a client sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from dataclasses import dataclass, field

_PATTERN = bytes(range(256)) * 256  # 64 KiB


def body(n: int, offset: int = 0) -> bytes:
    """Bytes ``offset .. offset+n`` of the endless pattern every origin body is cut from."""
    out = bytearray()
    pos = offset % len(_PATTERN)
    while len(out) < n:
        take = min(n - len(out), len(_PATTERN) - pos)
        out += _PATTERN[pos:pos + take]
        pos = 0
    return bytes(out)


def page(n: int) -> bytes:
    """An HTML page of ~n bytes with no origin reference in it: the rewriter must leave it byte-identical."""
    unit = b"<p>Plain paragraph text, nothing to map here: a b c d e f g.</p>\n"
    head = b"<!doctype html><html><head><title>t</title></head><body>\n"
    return head + unit * max(1, (n - len(head)) // len(unit)) + b"</body></html>\n"


SSE_EVENTS = [f"data: event {i}\n\n".encode() for i in range(5)]
_CHUNK = ('data: {{"id":"chatcmpl-f","object":"chat.completion.chunk","created":1,"model":"sse","choices":'
          '[{{"index":0,"delta":{{"content":"token {i} "}},"finish_reason":null}}]}}\n\n')
CHAT_EVENTS = [_CHUNK.format(i=i).encode() for i in range(12)] + [
    b'data: {"id":"chatcmpl-f","object":"chat.completion.chunk","created":1,"model":"sse","choices":'
    b'[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n', b"data: [DONE]\n\n"]


class _LocalServer:
    """A 127.0.0.1 listener whose per-connection tasks are held until they end (a stalling connection's task
    has no other reference and must not be collected mid-fault)."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0, backlog=4096)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await self._conn(reader, writer)

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise RuntimeError("subclass must serve the connection")


class FaultyOrigin(_LocalServer):
    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                path = head.split(b" ", 2)[1].decode()
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                payload = await reader.readexactly(length) if length else b""
                if path.startswith("/ws/"):  # a WebSocket upgrade: one big message, then close
                    from sluicegate.bench.suites.faultws import serve_ws

                    await serve_ws(head, int(path.rsplit("/", 1)[1]), writer)
                    break
                if path.endswith("/chat/completions"):  # the provider: behaviour by the upstream model name
                    model = json.loads(payload or b"{}").get("model", "")
                    path = {"sse": "/sse-chat", "429": "/429", "stall-head": "/stall-head"}.get(model, "/404")
                keep = await self._answer(path, writer)
                await writer.drain()
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass  # a client gone, or the origin closing with the suite
        finally:
            writer.close()

    async def _answer(self, path: str, w: asyncio.StreamWriter) -> bool:
        parts = path.strip("/").split("/")
        kind, n = parts[0], int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 1024

        def head(ctype: str, extra: str) -> bytes:
            return f"HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\n{extra}\r\n".encode()

        if kind in ("body", "page"):
            data = body(n) if kind == "body" else page(n)
            w.write(head("application/octet-stream" if kind == "body" else "text/html",
                         f"content-length: {len(data)}\r\n") + data)
            return True
        if kind == "big":  # streamed in 256 KiB writes, with backpressure
            w.write(head("application/octet-stream", f"content-length: {n}\r\n"))
            sent = 0
            while sent < n:
                take = min(256 * 1024, n - sent)
                w.write(body(take, sent))
                sent += take
                await w.drain()
            return True
        if kind == "chunked":
            w.write(head("application/octet-stream", "transfer-encoding: chunked\r\n"))
            data = body(n)
            for i in range(0, n, 4096):
                piece = data[i:i + 4096]
                w.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            w.write(b"0\r\n\r\n")
            return True
        if kind == "cl-long":  # declares 2n, sends n, closes
            w.write(head("application/octet-stream", f"content-length: {2 * n}\r\n") + body(n))
            return False
        if kind == "cl-short":  # declares n, sends 2n on a kept-alive connection: the rest is not a response
            w.write(head("application/octet-stream", f"content-length: {n}\r\n") + body(2 * n))
            return True
        if kind == "nolast":  # chunked, then the connection ends without the last chunk
            w.write(head("application/octet-stream", "transfer-encoding: chunked\r\n"))
            data = body(n)
            w.write(b"%x\r\n%s\r\n" % (len(data), data))
            return False
        if kind == "garbage":
            w.write(head("application/octet-stream", "transfer-encoding: chunked\r\n") + b"zz-not-hex\r\n" + body(n))
            return False
        if kind == "trickle":  # n bytes at 1 byte/s
            w.write(head("application/octet-stream", f"content-length: {n}\r\n"))
            data = body(n)
            for i in range(n):
                await w.drain()
                await asyncio.sleep(1.0)
                w.write(data[i:i + 1])
            return True
        if kind in ("sse", "sse-chat"):  # one chunk per event, each flushed, paced
            events, pause = (SSE_EVENTS, 0.05) if kind == "sse" else (CHAT_EVENTS, 0.02)
            w.write(head("text/event-stream", "transfer-encoding: chunked\r\ncache-control: no-cache\r\n"))
            for ev in events:
                w.write(b"%x\r\n%s\r\n" % (len(ev), ev))
                await w.drain()
                await asyncio.sleep(pause)
            w.write(b"0\r\n\r\n")
            return True
        if kind == "429":
            msg = b'{"error":"rate limited"}'
            w.write(f"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
                    f"content-length: {len(msg)}\r\n\r\n".encode() + msg)
            return True
        if kind == "stall-head":
            await asyncio.sleep(3600)
            return False
        w.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
        return True


def expected_for(path: str) -> bytes | None:
    """The exact body a client must get for ``path``; None where no complete answer is possible."""
    parts = path.strip("/").split("/")
    kind, n = parts[0], int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 1024
    if kind in ("body", "chunked", "trickle", "big"):
        return body(n)
    if kind == "page":
        return page(n)
    if kind == "cl-short":
        return body(n)
    if kind == "sse":
        return b"".join(SSE_EVENTS)
    if kind == "llm":
        return b"".join(CHAT_EVENTS)
    if kind == "429":
        return b'{"error":"rate limited"}'
    return None


# ---- fault proxy ---------------------------------------------------------------------------------------
@dataclass
class Mode:
    kind: str = "pass"  # pass | reset | stall | trickle
    after: int = 0  # response bytes passed before the fault
    interval: float = 1.0  # trickle: seconds per byte


class FaultProxy(_LocalServer):
    def __init__(self, target_port: int) -> None:
        super().__init__()
        self.target_port = target_port
        self.mode = Mode()
        self.faults = 0

    async def _conn(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            orr, ow = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            cw.close()
            return
        up = asyncio.ensure_future(self._pump(cr, ow))
        try:
            await self._down(orr, cw)
        except asyncio.CancelledError:  # the suite is closing
            pass
        finally:
            up.cancel()
            ow.close()
            cw.close()

    async def _pump(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        with contextlib.suppress(OSError):
            w.write_eof()

    async def _down(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        passed = 0
        with contextlib.suppress(ConnectionError):
            while data := await r.read(65536):
                mode = self.mode
                if mode.kind in ("reset", "stall") and passed + len(data) > mode.after:
                    w.write(data[:max(0, mode.after - passed)])
                    await w.drain()
                    self.faults += 1
                    if mode.kind == "stall":
                        await asyncio.sleep(3600)
                    sock = w.get_extra_info("socket")
                    if sock is not None:  # RST, not FIN
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    w.transport.abort()
                    return
                if mode.kind == "trickle":
                    for i in range(len(data)):
                        w.write(data[i:i + 1])
                        await w.drain()
                        await asyncio.sleep(mode.interval)
                    continue
                passed += len(data)
                w.write(data)
                await w.drain()


# ---- client + checker ------------------------------------------------------------------------------------
@dataclass
class Outcome:
    verdict: str  # exact | failed | corrupted | lost
    status: int = 0
    got: int = 0  # body bytes received
    detail: str = ""
    first_byte_s: float = 0.0
    seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


class _Body:
    """Compares body bytes with the expected ones as they arrive (no copy of a large body is kept)."""

    def __init__(self, expected: bytes | None, big: int = 0) -> None:
        self.expected = expected
        self.big = big  # > 0: the expected body is body(big), compared piecewise
        self.got = 0
        self.same = True
        self.tail = bytearray()  # small bodies, kept to recognise an error event

    def feed(self, data: bytes) -> None:
        if self.big:
            if self.same and data != body(len(data), self.got):
                self.same = False
        elif self.expected is not None and self.same and self.expected[self.got:self.got + len(data)] != data:
            self.same = False
        if self.expected is not None and len(self.tail) < (1 << 20):
            self.tail += data
        self.got += len(data)

    def error_event(self) -> bool:
        """An SSE stream that ends in an error event after a correct prefix: a protocol-correct failure."""
        if self.expected is None or not self.tail:
            return False
        data = bytes(self.tail)
        cut = data.find(b'"error"')
        if cut < 0:
            return False
        start = data.rfind(b"\n\n", 0, cut) + 2 if data.rfind(b"\n\n", 0, cut) >= 0 else 0
        return self.expected.startswith(data[:start])

    def exact(self) -> bool:
        size = self.big or (len(self.expected) if self.expected is not None else -1)
        return self.same and self.got == size


async def fetch(port: int, path: str, host: str, *, timeout: float = 30.0, read_delay: float = 0.0,
                read_size: int = 65536, stop_after: int = 0, model: str = "") -> Outcome:
    """One GET on a fresh connection. ``read_delay``: sleep between reads (a slow reader); ``stop_after``: the
    client vanishes after that many body bytes (verdict ``failed``, by the client's own doing)."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    expected = b"".join(CHAT_EVENTS) if model == "sse" else None if model else expected_for(path)
    parts = path.strip("/").split("/")
    checker = _Body(None, big=int(parts[1])) if parts[0] == "big" else _Body(expected)
    out = Outcome("lost")
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
            if model:  # an inference request: a streamed chat completion, expected as the provider sent it
                data = json.dumps({"model": model, "stream": True,
                                   "messages": [{"role": "user", "content": "hi"}]}).encode()
                writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\ncontent-type: "
                             f"application/json\r\ncontent-length: {len(data)}\r\n\r\n".encode() + data)
            else:
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            out.first_byte_s = loop.time() - t0
            lines = head.decode("latin-1").split("\r\n")
            out.status = int(lines[0].split(" ")[1])
            hdrs = {}
            for line in lines[1:]:
                if ":" in line:
                    k, _, v = line.partition(":")
                    hdrs[k.strip().lower()] = v.strip()
            if out.status >= 500 or (out.status != 200 and expected is None):
                out.verdict, out.detail = "failed", f"status {out.status}"
                return out
            if out.status != 200 and not path.startswith("/429"):
                out.verdict, out.detail = "corrupted", f"unexpected status {out.status}"
                return out

            async def read(n: int) -> bytes:
                if read_delay:
                    await asyncio.sleep(read_delay)
                return await reader.read(min(n, read_size))

            complete = False
            if "content-length" in hdrs:
                left = int(hdrs["content-length"])
                while left > 0:
                    data = await read(left)
                    if not data:
                        break
                    checker.feed(data)
                    left -= len(data)
                    if stop_after and checker.got >= stop_after:
                        out.verdict, out.got, out.detail = "failed", checker.got, "client left"
                        return out
                complete = left == 0
            elif hdrs.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    size_line = await reader.readuntil(b"\r\n")
                    size = int(size_line.split(b";")[0].strip(), 16)
                    if size == 0:
                        await reader.readuntil(b"\r\n")
                        complete = True
                        break
                    checker.feed(await reader.readexactly(size))
                    await reader.readexactly(2)
                    if read_delay:
                        await asyncio.sleep(read_delay)
            else:  # close-delimited: never complete-looking on its own; judge what came
                while data := await read(65536):
                    checker.feed(data)
                complete = True
            out.got = checker.got
            if not complete:
                out.verdict, out.detail = "failed", "connection ended before the body did"
            elif checker.exact():
                out.verdict = "exact"
            elif checker.error_event():
                out.verdict, out.detail = "failed", "stream ended with an error event"
            else:
                out.verdict, out.detail = "corrupted", f"complete-looking body, {checker.got} bytes, not the origin's"
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError) as exc:
        out.verdict, out.got, out.detail = "failed", checker.got, exc.__class__.__name__
    except TimeoutError:
        out.verdict, out.got, out.detail = "lost", checker.got, f"nothing for {timeout:g}s"
    finally:
        out.seconds = loop.time() - t0
        if writer is not None:
            writer.close()
    return out
