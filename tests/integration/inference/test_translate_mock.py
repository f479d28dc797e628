"""Translation against the built-in mock provider declared as real kinds: both protocols' tool-call streams,
and a client disconnect cancelling the upstream of a translated stream at once."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from harness import GatewayServer, send_request, settings_for

from sluicegate.config.inference import MockSettings
from sluicegate.dev.mock_provider import MockProvider

FAST = MockSettings(first_delay_ms=1, between_delay_ms=1, chunks=6)
TOOL: Any = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


class Env:
    def __init__(self) -> None:
        self.mock = MockProvider(FAST).start_in_thread()
        self.slow = MockProvider(FAST.model_copy(update={"fault": "stall_after=5"})).start_in_thread()
        base, slow = self.mock.url, self.slow.url
        self.gw = GatewayServer(settings_for({
            "path_prefix": "/llm",
            "providers": [
                {"name": "an", "kind": "anthropic", "base_url": base, "api_key": "sk-ant-live-mock"},
                {"name": "oc", "kind": "openai-compatible", "base_url": base, "auth": "none"},
                {"name": "an-slow", "kind": "anthropic", "base_url": slow, "api_key": "sk-ant-live-mock"},
            ],
            "models": [{"name": "claude", "targets": [{"provider": "an", "model": "claude-mock"}]},
                       {"name": "local", "targets": [{"provider": "oc", "model": "qwen-mock"}]},
                       {"name": "claude-slow", "targets": [{"provider": "an-slow", "model": "claude-mock"}]}],
        })).start()

    def stop(self) -> None:
        self.gw.stop()
        self.mock.stop_thread()
        self.slow.stop_thread()


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    e = Env()
    yield e
    e.stop()


def test_openai_client_gets_anthropic_tool_stream(env: Env) -> None:
    c = openai.OpenAI(base_url=env.gw.base + "/llm/v1", api_key="x", max_retries=0)
    with c.chat.completions.stream(model="claude", messages=[{"role": "user", "content": "hi"}],
                                   tools=[TOOL]) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [(t.id, json.loads(t.function.arguments)) for t in calls] == [  # type: ignore[union-attr]
        ("toolu_mock_0", {"location": "Paris", "unit": "c"}), ("toolu_mock_1", {"location": "Paris", "unit": "c"})]
    assert final.choices[0].finish_reason == "tool_calls"
    assert env.mock.log[-1].path == "/v1/messages"
    # plain text through the same route
    r = c.chat.completions.create(model="claude", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == FAST.text and r.choices[0].finish_reason == "stop"


def test_anthropic_client_gets_chat_tool_stream(env: Env) -> None:
    c = anthropic.Anthropic(base_url=env.gw.base + "/llm", api_key="x", max_retries=0)
    with c.messages.stream(model="local", max_tokens=50, messages=[{"role": "user", "content": "hi"}],
                           tools=[{"name": "get_weather", "input_schema": {"type": "object"}}]) as stream:
        final = stream.get_final_message()
    assert [(b.id, b.input) for b in final.content if b.type == "tool_use"] == [
        ("call_mock_0", {"location": "Paris", "unit": "c"}), ("call_mock_1", {"location": "Paris", "unit": "c"})]
    assert final.stop_reason == "tool_use" and final.usage.output_tokens == 6
    assert env.mock.log[-1].path == "/v1/chat/completions"
    with c.messages.stream(model="local", max_tokens=50, messages=[{"role": "user", "content": "hi"}]) as stream:
        text = "".join(stream.text_stream)
    assert text == FAST.text


def test_client_disconnect_cancels_translated_upstream(env: Env) -> None:
    before = len(env.slow.log)
    s = socket.create_connection(("127.0.0.1", env.gw.port))
    body = json.dumps({"model": "claude-slow", "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    send_request(s, "POST", "/llm/v1/chat/completions", body)
    s.settimeout(5)
    got = b""
    while got.count(b"data: ") < 2:
        got += s.recv(65536)
    closed = time.monotonic()
    s.close()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        recs = env.slow.log[before:]
        if recs and recs[0].closed_at is not None:
            assert recs[0].closed_at - closed < 0.1
            return
        time.sleep(0.002)
    raise AssertionError("upstream never saw the close")


def test_whole_tool_answers_both_ways(env: Env) -> None:
    c = openai.OpenAI(base_url=env.gw.base + "/llm/v1", api_key="x", max_retries=0)
    r = c.chat.completions.create(model="claude", messages=[{"role": "user", "content": "hi"}], tools=[TOOL])
    calls = r.choices[0].message.tool_calls or []
    assert [t.id for t in calls] == ["toolu_mock_0", "toolu_mock_1"] and r.choices[0].finish_reason == "tool_calls"
    a = anthropic.Anthropic(base_url=env.gw.base + "/llm", api_key="x", max_retries=0)
    msg = a.messages.create(model="local", max_tokens=50, messages=[{"role": "user", "content": "hi"}],
                            tools=[{"name": "get_weather", "input_schema": {"type": "object"}}])
    assert [(b.id, b.input) for b in msg.content if b.type == "tool_use"] == [
        ("call_mock_0", {"location": "Paris", "unit": "c"}), ("call_mock_1", {"location": "Paris", "unit": "c"})]
    assert msg.stop_reason == "tool_use"
