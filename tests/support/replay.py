"""A replay provider: a real HTTP server answering Anthropic Messages and OpenAI chat completions with the
recorded-shape streams in tests/data/translate/, written in small pieces so events straddle TCP reads.

The answer is chosen by the request's ``model``: ``replay-<fixture stem>`` (``.sse`` when the request
streams, else ``.json``); ``replay-status<code>`` answers that status with the protocol's own error body
and rate-limit headers; ``replay-reset-<stem>`` sends the first half of the stream and then drops the
connection; ``replay-json-<stem>`` answers the whole ``.json`` even to a streamed request. Every request
(path, headers, JSON body) is recorded for assertions.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

DATA = Path(__file__).resolve().parents[1] / "data" / "translate"


@dataclass
class ReplayLog:
    requests: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)

    def last(self) -> tuple[str, dict[str, str], dict[str, Any]]:
        return self.requests[-1]


def _error(path: str, status: int) -> web.Response:
    if path.endswith("/messages"):
        kind = {429: "rate_limit_error", 400: "invalid_request_error", 529: "overloaded_error"}.get(status, "api_error")
        body = {"type": "error", "error": {"type": kind, "message": f"replayed {status}"}}
        headers = {"retry-after": "0", "anthropic-ratelimit-requests-remaining": "0", "request-id": "req_replay"}
    else:
        body = {"error": {"message": f"replayed {status}", "type": "rate_limit_exceeded" if status == 429
                          else "invalid_request_error", "param": None, "code": None}}
        headers = {"retry-after": "0", "x-ratelimit-remaining-requests": "0", "x-request-id": "req_replay"}
    return web.json_response(body, status=status, headers=headers)


def build_replay(log: ReplayLog, piece: int = 7) -> web.Application:
    async def answer(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        log.requests.append((request.path, dict(request.headers), body))
        model = str(body.get("model", ""))
        if not model.startswith("replay-"):
            return _error(request.path, 400)
        name = model[len("replay-"):]
        if name.startswith("status"):
            return _error(request.path, int(name[len("status"):]))
        reset = name.startswith("reset-")
        name = name.removeprefix("reset-")
        whole = name.startswith("json-")  # answers whole even when asked to stream (older llama.cpp)
        name = name.removeprefix("json-")
        if whole or not body.get("stream"):
            return web.Response(body=(DATA / f"{name}.json").read_bytes(), content_type="application/json")
        data = (DATA / f"{name}.sse").read_bytes()
        resp = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8",
                                           "cache-control": "no-cache", "x-ratelimit-remaining-tokens": "999"})
        await resp.prepare(request)
        end = len(data) // 2 if reset else len(data)
        for i in range(0, end, piece):
            await resp.write(data[i:min(i + piece, end)])
            await asyncio.sleep(0)
        if reset:
            assert request.transport is not None
            request.transport.abort()
            return resp
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/messages", answer)
    app.router.add_post("/v1/chat/completions", answer)
    return app


def fixture_bytes(name: str) -> bytes:
    return (DATA / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads((DATA / name).read_text())
