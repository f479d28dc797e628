"""The governor inside the gateway, in-process under uvicorn, against a real mock provider (real sockets)."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvicorn

from sluicegate.config.inference import MockSettings
from sluicegate.config.model import Settings
from sluicegate.dev.mock_provider import MockProvider
from sluicegate.inference.app import InferenceApp
from sluicegate.teams import metrics as tm
from sluicegate.teams.manage import KeyAdmin


class Served:
    def __init__(self, settings: Settings) -> None:
        self.gateway = InferenceApp(settings, {})
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app=self.gateway, lifespan="on", log_level="critical",
                                                    access_log=False))
        self.thread = threading.Thread(target=lambda: self.server.run(sockets=[self.sock]), daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/llm/v1/chat/completions"


@pytest.fixture()
def mock() -> Iterator[MockProvider]:
    m = MockProvider(MockSettings(first_delay_ms=1, between_delay_ms=1, chunks=6)).start_in_thread()
    yield m
    m.stop_thread()


def make(tmp: Path, mock: MockProvider, **state: Any) -> Settings:
    return Settings.model_validate({"inference": {
        "path_prefix": "/llm",
        "providers": [{"name": "m", "kind": "openai-compatible", "base_url": mock.url, "auth": "bearer",
                       "api_key": "provider-secret-credential", "forward_headers": ["x-mock-fault"]}],
        "models": [{"name": "fast", "targets": [{"provider": "m", "model": "mock-1"}]}],
        "state": {"data_dir": str(tmp), **state}}})


def rows(tmp: Path) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(tmp / "state.db")
    return db.execute("SELECT request_id, status, outcome, input_tokens, output_tokens, estimated FROM ledger "
                      "ORDER BY ts").fetchall()


async def stream(url: str, key: str, fault: str = "", read_events: int | None = None) -> tuple[int, list[Any]]:
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "stream_options": {"include_usage": True}, "max_tokens": 20}
    headers = {"authorization": f"Bearer {key}"}
    if fault:
        headers["x-mock-fault"] = fault
    events: list[Any] = []
    async with aiohttp.ClientSession() as s, s.post(url, json=body, headers=headers) as r:
        if r.status != 200:
            return r.status, []
        async for line in r.content:
            if line.startswith(b"data: {"):
                events.append(json.loads(line[6:]))
                if read_events is not None and len(events) >= read_events:
                    return r.status, events  # leave mid-stream: the session closes the connection
    return r.status, events


def test_key_stays_here_usage_is_settled_from_the_stream(tmp_path: Path, mock: MockProvider) -> None:
    settings = make(tmp_path, mock)
    secret, _ = KeyAdmin(settings.inference, {}).create("a", tpm=100_000)
    with Served(settings) as srv:
        status, events = asyncio.run(stream(srv.url, secret))
        srv.gateway.teams.ledger.flush()
    assert status == 200
    sent = [r.headers for r in mock.log if r.path.endswith("/chat/completions")][-1]
    assert sent.get("authorization") == "Bearer provider-secret-credential"  # the provider credential only
    assert secret not in json.dumps(sent)
    usage = events[-1]["usage"]
    ((_, st, outcome, tin, tout, est),) = rows(tmp_path)
    assert (st, outcome, tin, tout, est) == (200, "ok", usage["prompt_tokens"], usage["completion_tokens"], 0)


def test_client_gone_settles_and_frees_the_stream_slot(tmp_path: Path, mock: MockProvider) -> None:
    settings = make(tmp_path, mock)
    secret, _ = KeyAdmin(settings.inference, {}).create("a", max_streams=1)
    with Served(settings) as srv:
        async def run() -> tuple[int, int]:
            first, _ = await stream(srv.url, secret, fault="between_ms=200", read_events=1)
            await asyncio.sleep(0.5)  # the gateway notices, cancels upstream, settles
            second, _ = await stream(srv.url, secret)
            return first, second

        assert asyncio.run(run()) == (200, 200)
        srv.gateway.teams.ledger.flush()
    gone, ok = rows(tmp_path)
    assert gone[1:3] == (200, "client_gone") and gone[5] == 1 and gone[3] > 0  # the prompt estimate, marked
    assert ok[1:3] == (200, "ok") and ok[5] == 0


def test_a_full_ledger_queue_never_blocks_a_stream(tmp_path: Path, mock: MockProvider) -> None:
    settings = make(tmp_path, mock, ledger_queue_max=16, ledger_flush_interval=60, ledger_batch_max=1000)
    secret, _ = KeyAdmin(settings.inference, {}).create("a")
    before = tm.LEDGER_DROPPED._value.get()
    with Served(settings) as srv:
        async def run() -> list[int]:
            return [(await stream(srv.url, secret))[0] for _ in range(30)]

        assert asyncio.run(run()) == [200] * 30
        assert tm.LEDGER_DROPPED._value.get() - before == 14
        srv.gateway.teams.ledger.flush()
    assert len(rows(tmp_path)) == 16


def test_translated_request_is_governed_and_settled(tmp_path: Path, mock: MockProvider) -> None:
    # an Anthropic client, an OpenAI-compatible provider: the translated relay's usage settles the key
    settings = make(tmp_path, mock)
    secret, _ = KeyAdmin(settings.inference, {}).create("a", tpm=100_000)

    async def run(url: str) -> tuple[int, list[Any]]:
        body = {"model": "fast", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        events: list[Any] = []
        async with aiohttp.ClientSession() as s, s.post(
                url, json=body, headers={"x-api-key": secret, "anthropic-version": "2023-06-01"}) as r:
            async for line in r.content:
                if line.startswith(b"data: {"):
                    events.append(json.loads(line[6:]))
            return r.status, events

    with Served(settings) as srv:
        status, events = asyncio.run(run(srv.url.replace("/chat/completions", "/messages")))
        srv.gateway.teams.ledger.flush()
    assert status == 200
    out = [e for e in events if e.get("type") == "message_delta"][-1]["usage"]["output_tokens"]
    ((_, st, outcome, tin, tout, est),) = rows(tmp_path)
    assert (st, outcome, tout, est) == (200, "ok", out, 0) and tin > 0
