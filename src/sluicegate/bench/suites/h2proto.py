"""The serving protocols' own CPU per request, in-process: ``sluicegate bench h2-protocol``.

Runs ``server/h2``'s ``H2Protocol`` and uvicorn's httptools HTTP/1.1 protocol (what the workers run) on a
fake transport that discards what they write, with a trivial ASGI app answering a 7-field head and a body
of ``--body`` bytes, and reports the process CPU per request of each (no TLS, no sockets, no proxying: only
the protocol's work, so the figure holds on a busy machine). h2: request HEADERS pre-encoded by an ``h2``
client (not timed), fed ``--batch`` streams at a time; h1: one request per turn on a keep-alive connection.
Must not know the faces: the app here is a stub.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

_REQUEST = [(b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) Chrome/120"), (b"accept", b"text/html,*/*;q=0.8"),
            (b"accept-encoding", b"gzip, br"), (b"accept-language", b"en-US,en;q=0.9")]


def _app(body: bytes) -> Any:
    heads = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode()),
             (b"date", b"Mon, 07 Dec 2026 03:04:09 GMT"), (b"server", b"nginx"), (b"cache-control", b"max-age=60"),
             (b"vary", b"Accept-Encoding")]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*heads, (b"x-request-id", os.urandom(8).hex().encode())]})
        await send({"type": "http.response.body", "body": body, "more_body": False})
    return app


class _Registry:
    def __init__(self) -> None:
        self.connections: set[Any] = set()
        self.tasks: set[Any] = set()


class _Sink:
    """A transport that takes every write and keeps nothing."""

    def write(self, data: bytes) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 443)}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


async def h2_cpu_us(n: int, body: bytes, batch: int) -> float:
    from h2.config import H2Configuration
    from h2.connection import H2Connection

    from sluicegate.server.h2.connection import H2Protocol
    from sluicegate.server.h2.options import H2Options

    c = H2Connection(H2Configuration(client_side=True, header_encoding=None))  # one client: HPACK state
    c.initiate_connection()
    c.update_settings({4: 1 << 30})
    c.increment_flow_control_window(1 << 30)
    prefix = c.data_to_send()
    batches = []
    for _ in range(max(1, n // batch)):
        for _ in range(batch):
            c.send_headers(c.get_next_available_stream_id(), [
                (b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"www.example.com"),
                (b":path", b"/page"), *_REQUEST], end_stream=True)
        batches.append(c.data_to_send())
        c.streams.clear()  # the client never sees the responses: keep its stream table from growing
    p = H2Protocol(_app(body), H2Options(max_concurrent_streams=batch, reset_rate=1e9, control_frame_rate=1e9),
                   _Registry())
    p.connection_made(_Sink())  # type: ignore[arg-type]
    p.data_received(prefix)
    t0 = time.process_time()
    for b in batches:
        p.data_received(b)
        while p.streams:
            await asyncio.sleep(0)
    return (time.process_time() - t0) / (len(batches) * batch) * 1e6


async def h1_cpu_us(n: int, body: bytes) -> float:
    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    cfg = uvicorn.Config(_app(body), http="httptools", lifespan="off", log_config=None, access_log=False,
                         server_header=False, date_header=False)
    cfg.load()
    state = ServerState()
    p = HttpToolsProtocol(config=cfg, server_state=state, app_state={})
    p.connection_made(_Sink())  # type: ignore[arg-type]
    req = b"GET /page HTTP/1.1\r\nHost: www.example.com\r\n" + b"".join(
        k.title() + b": " + v + b"\r\n" for k, v in _REQUEST) + b"\r\n"
    t0 = time.process_time()
    for _ in range(n):
        p.data_received(req)
        while state.tasks:
            await asyncio.sleep(0)
    return (time.process_time() - t0) / n * 1e6


def run(n: int, body_sizes: list[int], batch: int, rounds: int) -> dict[str, Any]:
    import uvloop

    rows = []
    for size in body_sizes:
        body = b"x" * size
        h1s, h2s = [], []
        for _ in range(rounds):  # interleaved
            h1s.append(uvloop.run(h1_cpu_us(n, body)))
            h2s.append(uvloop.run(h2_cpu_us(n, body, batch)))
        h1, h2 = statistics.median(h1s), statistics.median(h2s)
        rows.append({"body_bytes": size, "h1_us": round(h1, 1), "h2_us": round(h2, 1), "ratio": round(h2 / h1, 2)})
    return {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load": os.getloadavg(), "n": n,
            "batch": batch, "rounds": rounds, "rows": rows}


def markdown(result: dict[str, Any]) -> str:
    lines = [f"in-process protocol CPU per request, {result['n']} requests x {result['rounds']} rounds (median), "
             f"h2 {result['batch']} streams per read, {result['when']}, load {result['load'][0]:.1f}", "",
             "| body | uvicorn h1 (httptools) µs/req | server/h2 µs/req | h2 / h1 |", "|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['body_bytes']:,} B | {r['h1_us']} | {r['h2_us']} | {r['ratio']} |")
    return "\n".join(lines) + "\n"


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("-n", type=int, default=5000, help="requests per measurement")
    ap.add_argument("--body", default="2048,65536", help="response body sizes, comma-separated")
    ap.add_argument("--batch", type=int, default=16, help="h2 streams arriving in one read")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", default="", help="write the result here")


def run_args(args: argparse.Namespace) -> int:
    result = run(args.n, [int(x) for x in args.body.split(",") if x], args.batch, args.rounds)
    print(markdown(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sluicegate bench h2-protocol", description=(__doc__ or "").split("\n")[0])
    add_arguments(ap)
    return run_args(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
