"""The "buffered" side of the stream-vs-buffered A/B benchmark, outside the product path.

A buffering proxy (read the whole origin body, rewrite it, then answer with a ``Content-Length``) is
what sluicegate is measured against; it is not a mode of sluicegate. ``BufferedResponses`` wraps the
real application and holds each response whole (head and body, at most ``cap`` bytes) until the
application has sent its last body message, then sends it in one piece with its exact length. A
failure of the application before that (including an abort after its own commit) becomes a 502: the
client was told nothing yet. Over ``cap``: 502 as well.

Run: ``python -m sluicegate.dev.buffered --config FILE [--port P] [--max-body-bytes N]`` (one worker,
uvicorn with uvloop + httptools, the same stack as ``sluicegate serve``); ``sluicegate bench stream-ab`` starts
it for its "buffered" side. Never imported by the faces (tests/unit/test_layers.py checks).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from sluicegate.config import load_settings
from sluicegate.edge.asgi import Message, Receive, Scope, Send, send_simple
from sluicegate.server.app import SluicegateApp

log = logging.getLogger("sluicegate.dev.buffered")

DEFAULT_CAP = 64 * 1024 * 1024


class _TooLarge(Exception):
    pass


class BufferedResponses:
    """ASGI middleware: every HTTP response held whole, then sent with ``Content-Length``."""

    def __init__(self, app: Any, cap: int = DEFAULT_CAP) -> None:
        self.app = app
        self.cap = cap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head: Message | None = None
        parts: list[bytes] = []
        size = 0
        done = False

        async def hold(message: Message) -> None:
            nonlocal head, size, done
            if message["type"] == "http.response.start":
                head = message
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.cap:
                raise _TooLarge(f"response body exceeds {self.cap} bytes")
            parts.append(chunk)
            if not message.get("more_body", False):
                done = True

        try:
            await self.app(scope, receive, hold)
        except Exception as exc:  # the client has been sent nothing: say so plainly
            log.warning("buffered: response failed before it was complete: %s", exc)
            await send_simple(send, 502, f"buffered: {exc.__class__.__name__}: {exc}\n".encode())
            return
        if head is None or not done:
            await send_simple(send, 502, b"buffered: the application ended without a complete response\n")
            return
        body = b"".join(parts)
        headers = list(head.get("headers", []))
        if scope["method"] != "HEAD" and head["status"] not in (204, 304) and head["status"] >= 200:
            headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
        await send({**head, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sluicegate.dev.buffered", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="sluicegate TOML config")
    ap.add_argument("--port", type=int, help="override [server] port")
    ap.add_argument("--max-body-bytes", type=int, default=DEFAULT_CAP, help="largest body held (502 past it)")
    args = ap.parse_args(argv)
    import uvicorn

    settings = load_settings(args.config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = BufferedResponses(SluicegateApp(settings), args.max_body_bytes)
    port = args.port if args.port is not None else settings.server.port
    uvicorn.run(app, host=settings.server.host, port=port, loop="uvloop", http="httptools", lifespan="on",
                log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
