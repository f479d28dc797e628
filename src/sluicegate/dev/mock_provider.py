"""The mock LLM provider: a real HTTP/1.1 server speaking OpenAI and Anthropic, streaming SSE token by token.

Owns canned answers for every routed API, configurable pacing, fault injection and a request log (what
arrived, and when the client connection was seen closing) for tests. Faults come from ``MockSettings.fault``
or, per request, the ``x-mock-fault`` header: comma-separated ``key[=value]`` items —
``status=429`` (+ ``retry_after=S``), ``status=500``, ``status=529``, ``stall_headers``, ``stall_after=N``,
``reset_after=N``, ``eof_after=N``, ``gzip``, ``split``, ``big_event=BYTES``, ``piece_bytes=BYTES``, ``error_first``,
``short_body``, ``chunks=N``, ``first_delay_ms=X``, ``between_ms=X``, ``crlf``, ``keepalive``.
A request with ``tools`` is answered with two parallel tool calls (``mock_tools``), in each protocol's stream
shape. Must not know about the gateway; the gateway treats it as any other upstream.

Run alone: ``python -m sluicegate.dev.mock_provider --port 9100``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import itertools
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sluicegate.config.inference import MockSettings
from sluicegate.dev import mock_tools
from sluicegate.dev.mock_reader import BufferedReader

_MAX_HEAD = 64 * 1024
_MAX_BODY = 64 * 1024 * 1024


@dataclass
class RequestRecord:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    started: float
    closed_at: float | None = None  # monotonic time the client side closed while we were answering
    events_sent: int = 0
    completed: bool = False


@dataclass
class Faults:
    status: int = 0
    retry_after: str = ""
    stall_headers: bool = False
    stall_after: int = -1
    reset_after: int = -1
    eof_after: int = -1
    gzip: bool = False
    split: bool = False
    big_event: int = 0
    piece_bytes: int = 0
    error_first: bool = False
    short_body: bool = False
    crlf: bool = False
    keepalive: bool = False
    chunks: int | None = None
    first_delay_ms: float | None = None
    between_ms: float | None = None

    @classmethod
    def parse(cls, spec: str) -> Faults:
        f = cls()
        for item in spec.split(","):
            key, _, value = item.strip().partition("=")
            key = key.strip().replace("-", "_")
            if not key:
                continue
            if key in ("status", "stall_after", "reset_after", "eof_after", "big_event", "piece_bytes", "chunks"):
                setattr(f, key, int(value))
            elif key in ("first_delay_ms", "between_ms"):
                setattr(f, key, float(value))
            elif key == "retry_after":
                f.retry_after = value
            elif key in ("stall_headers", "gzip", "split", "error_first", "short_body", "crlf", "keepalive"):
                setattr(f, key, True)
        return f


def _split_text(text: str, n: int) -> list[str]:
    if n <= 1:
        return [text]
    size = max(1, -(-len(text) // n))
    parts = [text[i : i + size] for i in range(0, len(text), size)]
    while len(parts) < n:
        parts.append(" ok")
    return parts[:n]


def _j(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class MockProvider:
    """One mock server. ``await start()`` inside a loop, or ``start_in_thread()`` for sync tests."""

    def __init__(self, settings: MockSettings | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.settings = settings or MockSettings()
        self.host = host
        self.port = port
        self.log: list[RequestRecord] = []
        self.connections = 0
        self.open_connections = 0
        self.keep_log = True
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._conn_tasks: set[asyncio.Task[None]] = set()
        # Rendered event lists by (path, model, pieces, include_usage): identical requests (benchmarks)
        # skip re-serialising ~30 JSON events each. Bounded; cleared when full.
        self._events_cache: dict[tuple[str, str, tuple[str, ...], bool, bool], list[bytes]] = {}

    # ---- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._on_conn, self.host, self.port, backlog=4096,
                                                  limit=_MAX_HEAD)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._conn_tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    def start_in_thread(self) -> MockProvider:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="mock-provider", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop_thread(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # ---- connection handling ----------------------------------------------------------------------

    async def _on_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conn_tasks.add(task)
        self.connections += 1
        self.open_connections += 1
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rd = BufferedReader(reader, _MAX_HEAD)
        try:
            while await self._one_request(rd, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self.open_connections -= 1
            self._conn_tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _one_request(self, rd: BufferedReader, writer: asyncio.StreamWriter) -> bool:
        head = await rd.head()
        if head is None:
            return False
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, _ = lines[0].split(" ", 2)
        except ValueError:
            return False
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        body = b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size_line = await rd.line()
                if size_line is None:
                    return False
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    await rd.line()
                    break
                chunk = await rd.exactly(size + 2)
                if chunk is None:
                    return False
                parts.append(chunk[:-2])
            body = b"".join(parts)
        elif "content-length" in headers:
            n = int(headers["content-length"])
            if n > _MAX_BODY:
                return False
            got = await rd.exactly(n)
            if got is None:
                return False
            body = got
        rec = RequestRecord(method, target, headers, body, time.monotonic())
        if self.keep_log:
            self.log.append(rec)
        faults = Faults.parse(self.settings.fault + "," + headers.get("x-mock-fault", ""))

        # Answer while watching the client side for a close (EOF) at the same time.
        answer = asyncio.ensure_future(self._answer(rec, faults, writer))
        # (a client gone mid-answer ends it with an OSError, seen below; if this handler ends first, as when the
        # whole server stops, the exception must still count as seen)
        answer.add_done_callback(lambda t: t.cancelled() or t.exception())
        watcher = asyncio.ensure_future(rd.fill())
        try:
            while True:
                done, _ = await asyncio.wait({answer, watcher}, return_when=asyncio.FIRST_COMPLETED)
                if answer in done:
                    if isinstance(answer.exception(), OSError):
                        # The client side was reset while we wrote (a close with our bytes unread arrives
                        # as a RST): it closed, whichever of the two tasks noticed first.
                        rec.closed_at = time.monotonic()
                        return False
                    break
                if watcher.result():  # read ahead (next request bytes); keep watching
                    watcher = asyncio.ensure_future(rd.fill())
                    continue
                rec.closed_at = time.monotonic()
                answer.cancel()
                with contextlib.suppress(BaseException):
                    await answer
                return False
        finally:
            if not watcher.done():
                watcher.cancel()
                with contextlib.suppress(BaseException):
                    await watcher
        keep = answer.result()
        rec.completed = True
        return keep and not rd.eof

    # ---- answers ----------------------------------------------------------------------------------

    async def _answer(self, rec: RequestRecord, f: Faults, writer: asyncio.StreamWriter) -> bool:
        s = self.settings
        path = rec.path.split("?", 1)[0]
        if path.startswith("/v1/v1/"):
            path = path[3:]
        anthropic = path.startswith("/v1/messages")
        first = (f.first_delay_ms if f.first_delay_ms is not None else s.first_delay_ms) / 1000
        if f.stall_headers:
            await asyncio.Event().wait()
        if f.status:
            await asyncio.sleep(first)
            extra = [("retry-after", f.retry_after)] if f.retry_after else []
            if anthropic:
                etype = {429: "rate_limit_error", 529: "overloaded_error"}.get(f.status, "api_error")
                body = _j({"type": "error", "error": {"type": etype, "message": f"mock status {f.status}"}})
            else:
                body = _j({"error": {"message": f"mock status {f.status}", "type": "mock_error",
                                     "param": None, "code": str(f.status)}})
            self._head(writer, f.status, "application/json", len(body), extra)
            writer.write(body)
            await writer.drain()
            return True
        try:
            req = json.loads(rec.body) if rec.body else {}
        except ValueError:
            req = {}
        if not isinstance(req, dict):
            req = {}
        model = str(req.get("model", "mock"))
        if rec.method == "GET" and path.startswith("/v1/models"):
            body = _j({"object": "list", "data": [{"id": "mock-1", "object": "model", "created": 0,
                                                   "owned_by": "mock"}]})
            self._head(writer, 200, "application/json", len(body))
            writer.write(body)
            await writer.drain()
            return True
        n = f.chunks if f.chunks is not None else s.chunks
        pieces = _split_text(s.text, n)
        if f.piece_bytes:
            pieces = ["y" * f.piece_bytes for _ in pieces]
        if f.big_event:
            pieces[len(pieces) // 2] = "x" * f.big_event
        if req.get("stream") is True and path in ("/v1/chat/completions", "/v1/completions",
                                                  "/v1/responses", "/v1/messages"):
            so = req.get("stream_options")
            key = (path, model, tuple(pieces), isinstance(so, dict) and so.get("include_usage") is True,
                   bool(req.get("tools")))
            events = self._events_cache.get(key) or []
            if not events:
                events = self._events(path, model, pieces, req)
                if len(self._events_cache) >= 64:
                    self._events_cache.clear()
                self._events_cache[key] = events
            between = (f.between_ms if f.between_ms is not None else s.between_delay_ms) / 1000
            await asyncio.sleep(first)
            return await self._stream(rec, f, writer, events, between)
        body = self._whole(path, model, "".join(pieces), req, len(pieces))
        await asyncio.sleep(first)
        if f.gzip:
            body = gzip.compress(body)
        self._head(writer, 200, "application/json", len(body),
                   [("content-encoding", "gzip")] if f.gzip else [])
        if f.short_body:
            writer.write(body[: len(body) // 2])
            await writer.drain()
            writer.transport.abort()
            return False
        writer.write(body)
        await writer.drain()
        return True

    def _head(self, writer: asyncio.StreamWriter, status: int, ctype: str, length: int | None,
              extra: list[tuple[str, str]] | None = None) -> None:
        lines = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'Mock'}", f"content-type: {ctype}",
                 "x-request-id: mock-req", "x-ratelimit-remaining-requests: 99", "set-cookie: mock=1"]
        lines.append(f"content-length: {length}" if length is not None else "transfer-encoding: chunked")
        lines += [f"{k}: {v}" for k, v in extra or []]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    async def _stream(self, rec: RequestRecord, f: Faults, writer: asyncio.StreamWriter,
                      events: list[bytes], between: float) -> bool:
        extra = [("cache-control", "no-cache")]
        comp = None
        if f.gzip:
            extra.append(("content-encoding", "gzip"))
            comp = zlib.compressobj(6, zlib.DEFLATED, 31)
        self._head(writer, 200, "text/event-stream; charset=utf-8", None, extra)
        if f.error_first:
            events = [b'data: {"error":{"message":"mock overloaded","type":"server_error","code":"529"}}\n\n']
        if f.crlf:
            events = [e.replace(b"\n", b"\r\n") for e in events]

        def chunk(data: bytes) -> bytes:
            return b"%x\r\n%s\r\n" % (len(data), data) if data else b""

        for i, ev in enumerate(events):
            if i == f.reset_after:
                await writer.drain()
                writer.transport.abort()
                return False
            if i == f.eof_after:
                await writer.drain()
                writer.close()  # clean FIN without the terminating chunk
                return False
            if i == f.stall_after:
                await writer.drain()
                if f.keepalive:
                    while True:
                        writer.write(chunk(b": keep-alive\n\n"))
                        await writer.drain()
                        await asyncio.sleep(0.05)
                await asyncio.Event().wait()
            if i and between:
                await asyncio.sleep(between)
                if writer.transport.is_closing():  # the client left during the pause: a close, as a reset is
                    raise ConnectionResetError("client closed the connection")
            data = comp.compress(ev) + comp.flush(zlib.Z_SYNC_FLUSH) if comp else ev
            if f.split and len(data) > 2:
                cut = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
                for a, b in itertools.pairwise(cut):
                    writer.write(chunk(data[a:b]))
                    await writer.drain()
                    await asyncio.sleep(0.002)
            elif comp is None and i == len(events) - 1:
                writer.write(chunk(data) + b"0\r\n\r\n")  # the last event and the end in one write
                rec.events_sent = i + 1
                await writer.drain()
                return True
            else:
                writer.write(chunk(data))
            rec.events_sent = i + 1
            await writer.drain()
        if comp:
            writer.write(chunk(comp.flush()))
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    # ---- protocol payloads ------------------------------------------------------------------------

    def _events(self, path: str, model: str, pieces: list[str], req: dict[str, Any]) -> list[bytes]:
        tools = mock_tools.events(path, model, req)  # a request with tools gets two parallel tool calls
        if tools is not None:
            return tools
        created = 1_700_000_000
        out_tokens = len(pieces)
        in_tokens = 7
        if path == "/v1/messages":
            def ev(name: str, obj: dict[str, Any]) -> bytes:
                return b"event: " + name.encode() + b"\ndata: " + _j(obj) + b"\n\n"
            evs = [ev("message_start", {"type": "message_start", "message": {
                "id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": in_tokens, "output_tokens": 1, "cache_read_input_tokens": 2}}}),
                ev("content_block_start", {"type": "content_block_start", "index": 0,
                                           "content_block": {"type": "text", "text": ""}}),
                ev("ping", {"type": "ping"})]
            evs += [ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "text_delta", "text": p}}) for p in pieces]
            evs += [ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
                    ev("message_delta", {"type": "message_delta",
                                         "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                         "usage": {"output_tokens": out_tokens}}),
                    ev("message_stop", {"type": "message_stop"})]
            return evs
        if path == "/v1/responses":
            # The documented sequence (the SDK's responses.stream() helper needs every added/done pair).
            seq = itertools.count()

            def rev(obj: dict[str, Any]) -> bytes:
                obj = {"type": obj["type"], "sequence_number": next(seq), **obj}
                return b"event: " + str(obj["type"]).encode() + b"\ndata: " + _j(obj) + b"\n\n"
            text = "".join(pieces)
            base = {"id": "resp_mock", "object": "response", "created_at": created, "model": model,
                    "status": "in_progress", "output": []}
            ids = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
            part = {"type": "output_text", "text": "", "annotations": []}
            evs = [rev({"type": "response.created", "response": base}),
                   rev({"type": "response.in_progress", "response": base}),
                   rev({"type": "response.output_item.added", "output_index": 0,
                        "item": dict(self._resp_item(""), status="in_progress", content=[])}),
                   rev({"type": "response.content_part.added", **ids, "part": part})]
            evs += [rev({"type": "response.output_text.delta", **ids, "delta": p, "logprobs": []}) for p in pieces]
            evs += [rev({"type": "response.output_text.done", **ids, "text": text, "logprobs": []}),
                    rev({"type": "response.content_part.done", **ids, "part": dict(part, text=text)}),
                    rev({"type": "response.output_item.done", "output_index": 0, "item": self._resp_item(text)})]
            done = dict(base, status="completed", output=[self._resp_item(text)],
                        usage=_responses_usage(in_tokens, out_tokens))
            evs.append(rev({"type": "response.completed", "response": done}))
            return evs
        chat = path == "/v1/chat/completions"
        obj = "chat.completion.chunk" if chat else "text_completion"
        include_usage = isinstance(req.get("stream_options"), dict) and req["stream_options"].get(
            "include_usage") is True

        def cev(choice: dict[str, Any] | None, usage: dict[str, int] | None = None) -> bytes:
            body: dict[str, Any] = {"id": "chatcmpl-mock", "object": obj, "created": created, "model": model,
                                    "choices": [choice] if choice else []}
            if include_usage:
                body["usage"] = usage
            return b"data: " + _j(body) + b"\n\n"

        if chat:
            evs = [cev({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None})]
            evs += [cev({"index": 0, "delta": {"content": p}, "finish_reason": None}) for p in pieces]
            evs.append(cev({"index": 0, "delta": {}, "finish_reason": "stop"}))
        else:
            evs = [cev({"index": 0, "text": p, "finish_reason": None, "logprobs": None}) for p in pieces]
            evs.append(cev({"index": 0, "text": "", "finish_reason": "stop", "logprobs": None}))
        if include_usage:
            evs.append(cev(None, {"prompt_tokens": in_tokens, "completion_tokens": out_tokens,
                                  "total_tokens": in_tokens + out_tokens}))
        evs.append(b"data: [DONE]\n\n")
        return evs

    @staticmethod
    def _resp_item(text: str) -> dict[str, Any]:
        return {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}

    def _whole(self, path: str, model: str, text: str, req: dict[str, Any], out_tokens: int) -> bytes:
        # The same counts as the streamed answer to the same request (one output token per streamed piece).
        tools = mock_tools.whole(path, model, req)
        if tools is not None:
            return tools
        usage = {"prompt_tokens": 7, "completion_tokens": out_tokens, "total_tokens": 7 + out_tokens}
        if path == "/v1/messages/count_tokens":
            return _j({"input_tokens": 7})
        if path == "/v1/messages":
            return _j({"id": "msg_mock", "type": "message", "role": "assistant", "model": model,
                       "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                       "stop_sequence": None, "usage": {"input_tokens": 7, "output_tokens": out_tokens,
                                                        "cache_read_input_tokens": 2}})
        if path == "/v1/embeddings":
            inputs = req.get("input")
            n = len(inputs) if isinstance(inputs, list) else 1
            return _j({"object": "list", "model": model, "usage": {"prompt_tokens": 3, "total_tokens": 3},
                       "data": [{"object": "embedding", "index": i, "embedding": [0.1, -0.2, 0.3]}
                                for i in range(n)]})
        if path == "/v1/responses":
            return _j({"id": "resp_mock", "object": "response", "created_at": 1_700_000_000, "model": model,
                       "status": "completed", "output": [self._resp_item(text)],
                       "usage": _responses_usage(7, out_tokens)})
        if path == "/v1/completions":
            return _j({"id": "cmpl-mock", "object": "text_completion", "created": 1_700_000_000,
                       "model": model, "choices": [{"index": 0, "text": text, "finish_reason": "stop",
                                                    "logprobs": None}], "usage": usage})
        return _j({"id": "chatcmpl-mock", "object": "chat.completion", "created": 1_700_000_000, "model": model,
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop"}], "usage": usage})


def _responses_usage(in_tokens: int, out_tokens: int) -> dict[str, Any]:
    return {"input_tokens": in_tokens, "output_tokens": out_tokens, "total_tokens": in_tokens + out_tokens,
            "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}


def main(argv: list[str] | None = None, on_ready: Callable[[MockProvider], None] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m sluicegate.dev.mock_provider", description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9100)
    ap.add_argument("--chunks", type=int, default=MockSettings().chunks)
    ap.add_argument("--first-delay-ms", type=float, default=MockSettings().first_delay_ms)
    ap.add_argument("--between-ms", type=float, default=MockSettings().between_delay_ms)
    ap.add_argument("--fault", default="")
    ap.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = ap.parse_args(argv)
    settings = MockSettings(chunks=args.chunks, first_delay_ms=args.first_delay_ms,
                            between_delay_ms=args.between_ms, fault=args.fault)

    async def run() -> None:
        mock = MockProvider(settings, args.host, args.port)
        mock.keep_log = False
        await mock.start()
        print(f"mock provider listening on {mock.url}", flush=True)
        if on_ready is not None:
            on_ready(mock)
        await asyncio.Event().wait()

    if args.uvloop:
        import uvloop

        uvloop.run(run())
    else:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run())


if __name__ == "__main__":
    main()
