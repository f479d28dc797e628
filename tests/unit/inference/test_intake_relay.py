"""The inference intake (``inference/app.py``) and relay (``inference/relay.py``), driven through their ASGI
interface by a scripted client (``receive``/``send`` recorded in memory) against real mock providers on
loopback sockets: body bounds, disconnect cancelling the upstream exactly once, fallback only before the
first byte, and no byte reaching the client before a candidate is chosen."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sluicegate.config.inference import MockSettings
from sluicegate.config.model import Settings
from sluicegate.dev.mock_provider import MockProvider
from sluicegate.inference import metrics as m
from sluicegate.inference.app import InferenceApp
from sluicegate.inference.relay import StreamAborted

FAST = MockSettings(first_delay_ms=1, between_delay_ms=1, chunks=6)
CHAT = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}).encode()


class Client:
    """A scripted ASGI client: sends the body, then (optionally) disconnects once ``gone`` is set."""

    def __init__(self, body: bytes, pieces: int = 1) -> None:
        step = max(1, len(body) // pieces)
        self.parts = [body[i:i + step] for i in range(0, len(body), step)] or [b""]
        self.gone = asyncio.Event()
        self.sent: list[dict[str, Any]] = []
        self.sent_at: list[float] = []
        self.receives = 0

    async def receive(self) -> dict[str, Any]:
        self.receives += 1
        if self.parts:
            part = self.parts.pop(0)
            return {"type": "http.request", "body": part, "more_body": bool(self.parts)}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(dict(message))
        self.sent_at.append(time.monotonic())

    @property
    def status(self) -> int:
        return int(next(msg["status"] for msg in self.sent if msg["type"] == "http.response.start"))

    @property
    def body(self) -> bytes:
        return b"".join(msg.get("body", b"") for msg in self.sent if msg["type"] == "http.response.body")


def scope(path: str = "/llm/v1/chat/completions", headers: list[tuple[bytes, bytes]] | None = None,
          method: str = "POST") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
            "headers": headers if headers is not None else [(b"content-type", b"application/json")]}


@pytest.fixture
async def mocks() -> AsyncIterator[dict[str, MockProvider]]:
    made = {"good": MockProvider(FAST), "good2": MockProvider(FAST),
            "m500": MockProvider(FAST.model_copy(update={"fault": "status=500"})),
            "slow": MockProvider(MockSettings(first_delay_ms=1, between_delay_ms=200, chunks=50)),
            "reset": MockProvider(FAST.model_copy(update={"fault": "reset_after=2"}))}
    for mock in made.values():
        await mock.start()
    yield made
    for mock in made.values():
        await mock.stop()


def gateway(mocks: dict[str, MockProvider], targets: list[str], **extra: Any) -> InferenceApp:
    inference = {"path_prefix": "/llm", "max_request_body_bytes": 1024,
                 "retry": {"max_attempts": 3, "backoff": 0},
                 "providers": [{"name": n, "kind": "mock", "base_url": mk.url} for n, mk in mocks.items()],
                 "models": [{"name": "m", "targets": [{"provider": t, "model": "mock-1"} for t in targets]}],
                 **extra}
    return InferenceApp(Settings.model_validate({"inference": inference}), {})


def counter(api: str, model: str, outcome: str) -> float:
    return m.REQUESTS.labels(api, model, outcome)._value.get()  # type: ignore[no-any-return]


async def test_body_over_the_cap_is_refused_before_any_upstream_call(mocks: dict[str, MockProvider]) -> None:
    app = gateway(mocks, ["good"])
    await app.startup()
    try:
        declared = Client(b"x" * 2000)
        await app(scope(headers=[(b"content-length", b"2000")]), declared.receive, declared.send)
        assert declared.status == 413 and declared.receives == 0  # refused on the declared length, unread
        streamed = Client(b'{"model":"m","pad":"' + b"x" * 2000 + b'"}', pieces=8)
        await app(scope(), streamed.receive, streamed.send)
        assert streamed.status == 413 and streamed.receives <= 5  # cut at the cap, not read to the end
        bad = Client(b"{}")
        await app(scope(headers=[(b"content-length", b"12x")]), bad.receive, bad.send)
        assert bad.status == 400
        assert json.loads(streamed.body)["error"]["message"] == "request body too large"
        assert not mocks["good"].log
    finally:
        await app.shutdown()


async def test_body_in_pieces_reaches_the_provider_whole(mocks: dict[str, MockProvider]) -> None:
    app = gateway(mocks, ["good"])
    await app.startup()
    try:
        c = Client(CHAT, pieces=5)
        await app(scope(), c.receive, c.send)
        assert c.status == 200 and b"data: [DONE]" in c.body
        rec = mocks["good"].log[-1]
        assert json.loads(rec.body)["model"] == "mock-1"  # spliced, otherwise byte-identical
        assert rec.body == CHAT.replace(b'"model": "m"', b'"model": "mock-1"')
    finally:
        await app.shutdown()


async def test_disconnect_cancels_the_upstream_once(mocks: dict[str, MockProvider]) -> None:
    app = gateway(mocks, ["slow"])
    await app.startup()
    try:
        before = counter("openai_chat_completions", "m", "client_gone")
        c = Client(CHAT)
        task = asyncio.ensure_future(app(scope(), c.receive, c.send))
        for _ in range(200):  # until the first events have been relayed
            if c.body.count(b"data:") >= 2:
                break
            await asyncio.sleep(0.01)
        assert c.status == 200
        c.gone.set()
        await asyncio.wait_for(task, 5)  # the handler ends by itself (the cancellation was absorbed)
        assert counter("openai_chat_completions", "m", "client_gone") == before + 1  # exactly once
        rec = mocks["slow"].log[-1]
        for _ in range(100):
            if rec.closed_at is not None:
                break
            await asyncio.sleep(0.01)
        assert rec.closed_at is not None and not rec.completed  # the upstream connection was closed at once
        assert rec.events_sent < 10
        assert app.router.models["m"].targets[0].inflight == 0
        sent = len(c.sent)
        await asyncio.sleep(0.3)
        assert len(c.sent) == sent  # nothing written after the client left
    finally:
        await app.shutdown()


async def test_fallback_happens_before_the_first_byte_only(mocks: dict[str, MockProvider]) -> None:
    # A failing status before the first byte: the next candidate answers, the client never sees the 500.
    app = gateway(mocks, ["m500", "good"])
    await app.startup()
    try:
        c = Client(CHAT)
        await app(scope(), c.receive, c.send)
        assert c.status == 200 and b"data: [DONE]" in c.body
        assert len(mocks["m500"].log) == 1 and len(mocks["good"].log) == 1
        assert [msg["type"] for msg in c.sent].count("http.response.start") == 1
    finally:
        await app.shutdown()
    # A failure after the first byte: no fallback (good2 is never asked); the stream is aborted.
    app = gateway(mocks, ["reset", "good2"])
    await app.startup()
    try:
        c = Client(CHAT)
        with pytest.raises(StreamAborted) as exc:
            await app(scope(), c.receive, c.send)
        assert exc.value.kind == "upstream_reset"
        assert c.status == 200 and b"data:" in c.body
        assert b'"error"' in c.body  # the client protocol's own error event before the abort
        assert not mocks["good2"].log
    finally:
        await app.shutdown()


async def test_no_byte_reaches_the_client_before_a_candidate_is_chosen(mocks: dict[str, MockProvider]) -> None:
    # Two failing attempts (a 500 each), then a good candidate: the first thing the client
    # sees is the chosen candidate's head, after every failed attempt was made.
    app = gateway(mocks, ["m500", "m500", "good"], retry={"max_attempts": 3, "backoff": 0.05})
    await app.startup()
    try:
        c = Client(CHAT)
        await app(scope(), c.receive, c.send)
        assert c.sent[0]["type"] == "http.response.start" and c.sent[0]["status"] == 200
        last_failed = max(rec.started for rec in mocks["m500"].log)
        chosen = mocks["good"].log[-1].started
        assert len(mocks["m500"].log) == 2 and last_failed < chosen <= c.sent_at[0]
        assert [msg["type"] for msg in c.sent].count("http.response.start") == 1
    finally:
        await app.shutdown()
    # When every candidate fails, the one answer is the last upstream's own error (status and body).
    app = gateway(mocks, ["m500"], retry={"max_attempts": 2, "backoff": 0})
    await app.startup()
    try:
        c = Client(CHAT)
        tried = len(mocks["m500"].log)
        await app(scope(), c.receive, c.send)
        assert c.status == 500 and len(mocks["m500"].log) == tried + 2
        assert [msg["type"] for msg in c.sent] == ["http.response.start", "http.response.body"]
    finally:
        await app.shutdown()


async def test_idle_timeout_ends_a_stalled_stream(mocks: dict[str, MockProvider]) -> None:
    stall = MockProvider(FAST.model_copy(update={"fault": "stall_after=2"}))
    await stall.start()
    try:
        app = InferenceApp(Settings.model_validate({"inference": {
            "path_prefix": "/llm",
            "providers": [{"name": "stall", "kind": "mock", "base_url": stall.url, "timeouts": {"idle": 0.3}}],
            "models": [{"name": "m", "targets": [{"provider": "stall", "model": "mock-1"}]}]}}), {})
        await app.startup()
        c = Client(CHAT)
        t0 = time.monotonic()
        with pytest.raises(StreamAborted) as exc:
            await app(scope(), c.receive, c.send)
        assert exc.value.kind == "idle_timeout" and 0.25 < time.monotonic() - t0 < 3
        assert c.status == 200 and b'"error"' in c.body
        await app.shutdown()
    finally:
        await stall.stop()


async def test_unknown_model_and_path_are_answered_in_the_client_protocol(mocks: dict[str, MockProvider]) -> None:
    app = gateway(mocks, ["good"])
    await app.startup()
    try:
        c = Client(b'{"model":"nope","max_tokens":5,"messages":[]}')
        await app(scope("/llm/v1/messages"), c.receive, c.send)
        assert c.status == 404 and json.loads(c.body)["type"] == "error"  # Anthropic's shape
        c = Client(b"")
        await app(scope("/llm/v1/nothing-here", method="GET"), c.receive, c.send)
        assert c.status == 404 and "error" in json.loads(c.body)
        assert not mocks["good"].log
    finally:
        await app.shutdown()


async def test_the_client_gets_our_request_id_once(mocks: dict[str, MockProvider]) -> None:
    # The mock answers with its own x-request-id (as providers do): never relayed next to ours, neither on a
    # relayed stream nor on the last upstream's error answer.
    for targets, expect in ((["good"], 200), (["m500"], 500)):
        app = gateway(mocks, targets, retry={"max_attempts": 1, "backoff": 0})
        await app.startup()
        try:
            c = Client(CHAT)
            await app(scope(), c.receive, c.send)
        finally:
            await app.shutdown()
        ids = [v for k, v in c.sent[0]["headers"] if k == b"x-request-id"]
        assert c.status == expect and len(ids) == 1 and ids[0] != b"mock-req", c.sent[0]["headers"]
