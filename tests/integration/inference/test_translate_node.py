"""The Node SDKs (openai, @anthropic-ai/sdk, Vercel AI SDK ``streamText`` with @ai-sdk/openai-compatible and
@ai-sdk/anthropic) through every translation direction, against the replay provider over real sockets.
The Node side is tests/node/translate/sdk.mjs (its own package.json + lock; installed by tests/node/setup.sh)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_translate_sdk import Env

NODE_DIR = Path(__file__).resolve().parents[2] / "node" / "translate"


@pytest.fixture(scope="module")
def seen() -> Iterator[dict[str, Any]]:
    missing = [p for p in ("openai", "@anthropic-ai/sdk", "ai", "@ai-sdk/openai-compatible", "@ai-sdk/anthropic")
               if not (NODE_DIR / "node_modules" / p / "package.json").exists()]
    if missing:
        pytest.fail(f"Node set-up has not run; run `bash tests/node/setup.sh` first. Missing: {missing}",
                    pytrace=False)
    env = Env()
    try:
        res = subprocess.run(["node", str(NODE_DIR / "sdk.mjs"), env.gw.base], capture_output=True, text=True,
                             timeout=120, check=False)
        assert res.returncode == 0, res.stderr[-2000:]
        yield json.loads(res.stdout.strip().splitlines()[-1])
    finally:
        env.stop()


PARIS_TOKYO = [["toolu_01Paris", "get_weather", {"location": "Paris", "unit": "c"}],
               ["toolu_02Tokyo", "get_weather", {"location": "Tokyo"}]]


def test_openai_node_chat_stream_tools_from_anthropic(seen: dict[str, Any]) -> None:
    r = seen["openai_chat_tools"]
    assert r["calls"] == PARIS_TOKYO and r["finish"] == "tool_calls" and r["content"] == "Let me check both."
    assert (r["usage"]["prompt_tokens"], r["usage"]["completion_tokens"]) == (2620, 89)


def test_openai_node_sees_the_error_event(seen: dict[str, Any]) -> None:
    assert seen["openai_chat_error"] == {"thrown": "Overloaded", "name": "APIError"}


def test_anthropic_node_stream_tools_from_chat(seen: dict[str, Any]) -> None:
    r = seen["anthropic_tools"]
    assert r["stop"] == "tool_use"
    assert r["calls"] == [["call_Paris01", "get_weather", {"location": "Paris"}],
                          ["call_Tokyo02", "get_weather", {"location": "Tokyo"}]]
    assert r["usage"]["output_tokens"] == 40 and r["usage"]["cache_read_input_tokens"] == 64


def test_openai_node_responses_stream_from_anthropic(seen: dict[str, Any]) -> None:
    r = seen["openai_responses_tools"]
    assert "thrown" not in r, r
    assert r["types"][:2] == ["response.created", "response.in_progress"] and r["types"][-1] == "response.completed"
    assert r["calls"] == [[c[0], c[2]] for c in PARIS_TOKYO]
    assert r["usage"]["output_tokens"] == 89


def test_vercel_openai_compatible_to_anthropic(seen: dict[str, Any]) -> None:
    t = seen["vercel_compat_text"]
    assert t["text"] == "Hello, café ✓ — world!" and t["finish"] == "stop"
    assert (t["usage"]["inputTokens"], t["usage"]["outputTokens"]) == (25, 15)
    tools = seen["vercel_compat_tools"]
    assert tools["finish"] == "tool-calls" and tools["calls"] == PARIS_TOKYO
    assert tools["usage"]["cachedInputTokens"] == 2048


def test_vercel_anthropic_to_chat(seen: dict[str, Any]) -> None:
    t = seen["vercel_anthropic_text"]
    assert t["text"] == "Hello, café ✓ — world!" and t["finish"] == "stop"
    assert (t["usage"]["inputTokens"], t["usage"]["outputTokens"], t["usage"]["cachedInputTokens"]) == (22, 15, 8)


def test_vercel_sees_the_error_event_not_terminated(seen: dict[str, Any]) -> None:
    e = seen["vercel_anthropic_error"]
    assert e["text"] == "Partial"
    assert e["errors"] == ["The server had an error while processing your request."]
    assert not any("terminated" in m for m in e["errors"])


# every call opened first, then their argument deltas interleaved by index (openai_tools_interleaved.sse)
INTERLEAVED = [["call_Paris01", "get_weather", '{"location": "Paris"}'],
               ["call_Tokyo02", "get_weather", '{"location": "Tōkyō 東京"}'],
               ["call_Lima03", "get_time", '{"city": "Lima", "tz": "America/Lima"}']]


def test_anthropic_node_stream_interleaved_calls_from_chat(seen: dict[str, Any]) -> None:
    """The Node Messages SDK gets one block at a time (start, its deltas, stop), each call's input exact."""
    r = seen["anthropic_tools_interleaved"]
    assert "thrown" not in r, r
    assert r["calls"] == [[c, n, json.loads(a)] for c, n, a in INTERLEAVED]
    open_block = -1
    joined: dict[int, str] = {}
    for typ, index, partial in r["seq"]:
        if typ == "content_block_start":
            assert open_block == -1, r["seq"]
            open_block = index
        else:
            assert index == open_block, r["seq"]
            if typ == "content_block_stop":
                open_block = -1
            else:
                joined[index] = joined.get(index, "") + partial
    assert open_block == -1 and [joined[i] for i in sorted(joined)] == [a for _, _, a in INTERLEAVED]
    assert r["stop"] == "tool_use" and (r["usage"]["input_tokens"], r["usage"]["output_tokens"]) == (90, 51)


def test_openai_node_responses_stream_interleaved_calls_from_chat(seen: dict[str, Any]) -> None:
    """The Node Responses helper: each call's deltas on its own output_index, its item and the final output exact."""
    r = seen["openai_responses_tools_interleaved"]
    assert "thrown" not in r, r
    assert r["calls"] == INTERLEAVED and r["status"] == "completed"
    assert r["deltas"] == {str(i): a for i, (_, _, a) in enumerate(INTERLEAVED)}
    assert r["done"] == {c: a for c, _, a in INTERLEAVED}
    assert r["usage"]["output_tokens"] == 51


def test_vercel_anthropic_interleaved_calls_from_chat(seen: dict[str, Any]) -> None:
    r = seen["vercel_anthropic_tools_interleaved"]
    assert "thrown" not in r, r
    assert r["calls"] == [[c, n, json.loads(a)] for c, n, a in INTERLEAVED] and r["finish"] == "tool-calls"
    assert (r["usage"]["inputTokens"], r["usage"]["outputTokens"]) == (90, 51)
