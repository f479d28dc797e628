"""Streaming translators over recorded-shape provider streams: exact output at every read split, and the
semantics each client SDK relies on (text, tool calls with ids and indices, reasoning, finish, usage)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.inference.protocol import Api
from sluicegate.inference.translate import Ctx, StreamOverflow, StreamTranslator, route_for

DATA = Path(__file__).resolve().parents[2] / "data" / "translate"


def fixture(name: str) -> bytes:
    return (DATA / name).read_bytes()


def translator(client: Api, upstream: Api, include_usage: bool = True, bound: int = 1 << 20) -> StreamTranslator:
    route = route_for(client, upstream)
    assert route is not None
    return route.stream(Ctx("anthropic", include_usage=include_usage), bound)


def run(tr: StreamTranslator, pieces: list[bytes]) -> bytes:
    return b"".join(tr.feed(p) for p in pieces) + tr.finish()


def events(raw: bytes) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for block in raw.split(b"\n\n"):
        if not block.strip() or block.startswith(b":"):
            continue
        name = ""
        data = ""
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: "):
                data = line[6:].decode()
        out.append((name, "[DONE]" if data == "[DONE]" else json.loads(data)))
    return out


CASES = [
    (Api.CHAT, Api.MESSAGES, "anthropic_text.sse"),
    (Api.CHAT, Api.MESSAGES, "anthropic_tools.sse"),
    (Api.CHAT, Api.MESSAGES, "anthropic_error.sse"),
    (Api.MESSAGES, Api.CHAT, "openai_text.sse"),
    (Api.MESSAGES, Api.CHAT, "openai_tools.sse"),
    (Api.MESSAGES, Api.CHAT, "openai_reasoning.sse"),
    (Api.MESSAGES, Api.CHAT, "openai_error.sse"),
    (Api.RESPONSES, Api.CHAT, "openai_tools.sse"),
    (Api.RESPONSES, Api.CHAT, "openai_reasoning.sse"),
    (Api.MESSAGES, Api.CHAT, "openai_tools_interleaved.sse"),
    (Api.RESPONSES, Api.CHAT, "openai_tools_interleaved.sse"),
    (Api.RESPONSES, Api.MESSAGES, "anthropic_tools.sse"),
    (Api.RESPONSES, Api.MESSAGES, "anthropic_length.sse"),
]


def _stable(raw: bytes) -> bytes:
    # ``created`` timestamps come from the clock; everything else must be byte-identical.
    import re

    return re.sub(rb'"(created|created_at)":\d+', b'"created":0', raw)


@pytest.mark.parametrize(("client", "upstream", "name"), CASES)
def test_every_split_point_gives_the_same_output(client: Api, upstream: Api, name: str) -> None:
    data = fixture(name)
    whole = _stable(run(translator(client, upstream), [data]))
    assert whole
    for i in range(1, len(data)):
        assert _stable(run(translator(client, upstream), [data[:i], data[i:]])) == whole, (name, i)
    # and byte by byte
    assert _stable(run(translator(client, upstream), [data[i:i + 1] for i in range(len(data))])) == whole


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
       case=st.sampled_from(CASES))
def test_any_number_of_splits_gives_the_same_output(cuts: list[int], case: tuple[Api, Api, str]) -> None:
    client, upstream, name = case
    data = fixture(name)
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert _stable(run(translator(client, upstream), pieces)) == _stable(run(translator(client, upstream), [data]))


def test_events_flush_as_soon_as_complete() -> None:
    data = fixture("anthropic_text.sse")
    tr = translator(Api.CHAT, Api.MESSAGES)
    first_event_end = data.index(b"\n\n") + 2
    assert tr.feed(data[:first_event_end - 1]) == b""
    out = tr.feed(data[first_event_end - 1:first_event_end])
    assert events(out)[0][1]["choices"][0]["delta"] == {"role": "assistant", "content": ""}


def _chat_summary(evs: list[tuple[str, Any]]) -> dict[str, Any]:
    text, reasoning, finish, usage, errors = "", "", None, None, []
    calls: dict[int, dict[str, Any]] = {}
    for _, obj in evs:
        if obj == "[DONE]":
            continue
        if "error" in obj:
            errors.append(obj["error"])
            continue
        if obj.get("usage"):
            usage = obj["usage"]
        for ch in obj["choices"]:
            d = ch["delta"]
            text += d.get("content") or ""
            reasoning += d.get("reasoning_content") or ""
            for tc in d.get("tool_calls") or []:
                c = calls.setdefault(tc["index"], {"id": None, "name": None, "arguments": ""})
                c["id"] = tc.get("id") or c["id"]
                c["name"] = (tc.get("function") or {}).get("name") or c["name"]
                c["arguments"] += (tc.get("function") or {}).get("arguments") or ""
            finish = ch.get("finish_reason") or finish
    return {"text": text, "reasoning": reasoning, "calls": calls, "finish": finish, "usage": usage,
            "errors": errors}


def test_anthropic_tools_to_chat() -> None:
    evs = events(run(translator(Api.CHAT, Api.MESSAGES), [fixture("anthropic_tools.sse")]))
    assert evs[-1][1] == "[DONE]"
    s = _chat_summary(evs)
    assert s["text"] == "Let me check both."
    assert s["reasoning"] == "The user wants weather for two cities."
    assert s["calls"] == {
        0: {"id": "toolu_01Paris", "name": "get_weather", "arguments": '{"location": "Paris", "unit": "c"}'},
        1: {"id": "toolu_02Tokyo", "name": "get_weather", "arguments": '{"location": "Tokyo"}'}}
    assert s["finish"] == "tool_calls"
    # OpenAI prompt_tokens includes cache reads and writes; cached_tokens are the reads.
    assert s["usage"]["prompt_tokens"] == 472 + 100 + 2048
    assert s["usage"]["prompt_tokens_details"]["cached_tokens"] == 2048
    assert s["usage"]["completion_tokens"] == 89


def test_usage_chunk_only_when_asked() -> None:
    evs = events(run(translator(Api.CHAT, Api.MESSAGES, include_usage=False), [fixture("anthropic_text.sse")]))
    assert all("usage" not in obj for _, obj in evs if obj != "[DONE]")
    s = _chat_summary(evs)
    assert s["text"] == "Hello, café ✓ — world!" and s["finish"] == "stop"


def test_anthropic_error_event_becomes_chat_error_then_done() -> None:
    evs = events(run(translator(Api.CHAT, Api.MESSAGES), [fixture("anthropic_error.sse")]))
    assert evs[-2][1]["error"]["message"] == "Overloaded"
    assert evs[-1][1] == "[DONE]"


def _anthropic_summary(evs: list[tuple[str, Any]]) -> dict[str, Any]:
    blocks: dict[int, dict[str, Any]] = {}
    stop, usage, open_ = None, {}, set()
    names = [n for n, _ in evs]
    for name, obj in evs:
        assert name == obj["type"]
        if name == "message_start":
            usage.update(obj["message"]["usage"])
        elif name == "content_block_start":
            assert obj["index"] not in blocks
            blocks[obj["index"]] = dict(obj["content_block"], partial="")
            open_.add(obj["index"])
        elif name == "content_block_delta":
            b = blocks[obj["index"]]
            d = obj["delta"]
            b["partial"] += d.get("text") or d.get("partial_json") or d.get("thinking") or ""
        elif name == "content_block_stop":
            open_.remove(obj["index"])
        elif name == "message_delta":
            stop = obj["delta"]["stop_reason"]
            usage.update(obj["usage"])
    assert not open_
    return {"blocks": [blocks[i] for i in sorted(blocks)], "stop": stop, "usage": usage, "names": names}


def test_chat_parallel_tools_to_anthropic() -> None:
    evs = events(run(translator(Api.MESSAGES, Api.CHAT), [fixture("openai_tools.sse")]))
    s = _anthropic_summary(evs)
    assert s["names"][0] == "message_start" and s["names"][-2:] == ["message_delta", "message_stop"]
    assert [(b["type"], b["id"], b["name"], json.loads(b["partial"])) for b in s["blocks"]] == [
        ("tool_use", "call_Paris01", "get_weather", {"location": "Paris"}),
        ("tool_use", "call_Tokyo02", "get_weather", {"location": "Tokyo"})]
    assert s["stop"] == "tool_use"
    assert s["usage"]["input_tokens"] == 120 - 64 and s["usage"]["cache_read_input_tokens"] == 64
    assert s["usage"]["output_tokens"] == 40


def _chat_chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return b"data: " + json.dumps({"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [
        {"index": 0, "delta": delta, "finish_reason": finish}]}).encode() + b"\n\n"


def _open_call(i: int) -> bytes:
    return _chat_chunk({"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function",
                                        "function": {"name": f"f{i}", "arguments": ""}}]})


def _args(i: int, text: str) -> bytes:
    return _chat_chunk({"tool_calls": [{"index": i, "function": {"arguments": text}}]})


def test_sequential_calls_to_anthropic_stream_live() -> None:
    # OpenAI's own order (each call whole, then the next): the next call's block opens at once and its
    # deltas stream as they come, none held until the finish; a late whitespace-only piece is skipped.
    pieces = [_open_call(0), _args(0, '{"a":'), _args(0, "1}"), _open_call(1), _args(1, '{"b":'), _args(0, " "),
              _args(1, "2}")]
    tr = translator(Api.MESSAGES, Api.CHAT)
    evs = events(b"".join(tr.feed(p) for p in pieces))
    deltas = [(o["index"], o["delta"]["partial_json"]) for n, o in evs if n == "content_block_delta"]
    assert deltas == [(0, '{"a":'), (0, "1}"), (1, '{"b":'), (1, "2}")]
    assert ("content_block_stop", {"type": "content_block_stop", "index": 0}) in evs
    assert not any(n == "error" for n, _ in evs)


def test_interleaved_calls_to_anthropic_hold_later_calls_within_the_bound() -> None:
    # Within the bound: the live block streams, the held call follows whole after it, blocks sequential.
    pieces = [_open_call(0), _open_call(1), _args(1, '{"b":'), _args(0, '{"a":1}'), _args(1, '2}'),
              _chat_chunk({}, "tool_calls"), b"data: [DONE]\n\n"]
    evs = events(run(translator(Api.MESSAGES, Api.CHAT, bound=1024), pieces))
    blocks = [(n, o.get("index")) for n, o in evs if n.startswith("content_block")]
    assert blocks == [("content_block_start", 0), ("content_block_delta", 0), ("content_block_stop", 0),
                      ("content_block_start", 1), ("content_block_delta", 1), ("content_block_stop", 1)]
    s = _anthropic_summary(evs)
    assert [json.loads(b["partial"]) for b in s["blocks"]] == [{"a": 1}, {"b": 2}]
    # Over it: an error event, never a truncated call.
    tr = translator(Api.MESSAGES, Api.CHAT, bound=1024)
    evs = events(run(tr, [_open_call(0), _open_call(1), _args(1, '"' + "x" * 1100 + '"')]))
    assert evs[-1][0] == "error" and "exceed 1024 bytes" in evs[-1][1]["error"]["message"]
    assert not any(n == "content_block_start" and o["index"] == 1 for n, o in evs)


def test_call_delta_after_its_block_closed_is_an_error_not_misplaced() -> None:
    pieces = [_open_call(0), _args(0, '{"a":'), _chat_chunk({"content": "and"}), _args(0, '1}'),
              _chat_chunk({}, "tool_calls")]
    evs = events(run(translator(Api.MESSAGES, Api.CHAT), pieces))
    assert evs[-1][0] == "error" and "after its block was closed" in evs[-1][1]["error"]["message"]
    # The Responses client has no sequential rule: the call stays open, its arguments whole.
    evs = events(run(translator(Api.RESPONSES, Api.CHAT), [*pieces, b"data: [DONE]\n\n"]))
    done = [o["item"] for n, o in evs if n == "response.output_item.done"]
    assert [(i["type"], i.get("arguments")) for i in done] == [("message", None), ("function_call", '{"a":1}')]
    assert evs[-1][0] == "response.completed"


def test_chat_reasoning_to_anthropic_thinking() -> None:
    s = _anthropic_summary(events(run(translator(Api.MESSAGES, Api.CHAT), [fixture("openai_reasoning.sse")])))
    assert [(b["type"], b["partial"]) for b in s["blocks"]] == [("thinking", "Think: 2+2 is 4."),
                                                               ("text", "The answer is 4.")]
    assert s["stop"] == "max_tokens"


def test_chat_error_chunk_to_anthropic_error_event() -> None:
    evs = events(run(translator(Api.MESSAGES, Api.CHAT), [fixture("openai_error.sse")]))
    assert evs[-1][0] == "error" and "server had an error" in evs[-1][1]["error"]["message"]
    assert "message_stop" not in [n for n, _ in evs]


def _responses_summary(evs: list[tuple[str, Any]]) -> dict[str, Any]:
    seqs = [obj["sequence_number"] for _, obj in evs]
    assert seqs == list(range(len(evs)))
    final = evs[-1][1]["response"]
    return {"names": [n for n, _ in evs], "final": final}


def test_chat_tools_to_responses() -> None:
    s = _responses_summary(events(run(translator(Api.RESPONSES, Api.CHAT), [fixture("openai_tools.sse")])))
    assert s["names"][:2] == ["response.created", "response.in_progress"]
    assert s["names"][-1] == "response.completed"
    calls = [(o["call_id"], o["name"], o["arguments"]) for o in s["final"]["output"]]
    assert calls == [("call_Paris01", "get_weather", '{"location": "Paris"}'),
                     ("call_Tokyo02", "get_weather", '{"location": "Tokyo"}')]
    assert s["final"]["usage"]["input_tokens"] == 120 and s["final"]["usage"]["output_tokens"] == 40


def test_anthropic_length_to_responses_incomplete() -> None:
    s = _responses_summary(events(run(translator(Api.RESPONSES, Api.MESSAGES), [fixture("anthropic_length.sse")])))
    assert s["names"][-1] == "response.incomplete"
    assert s["final"]["status"] == "incomplete"
    assert s["final"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert s["final"]["output"][0]["content"][0]["text"] == "One two"


def test_anthropic_tools_to_responses_keeps_reasoning_text_and_calls() -> None:
    s = _responses_summary(events(run(translator(Api.RESPONSES, Api.MESSAGES), [fixture("anthropic_tools.sse")])))
    types = [o["type"] for o in s["final"]["output"]]
    assert types == ["reasoning", "message", "function_call", "function_call"]
    assert s["final"]["output"][0]["content"][0]["text"] == "The user wants weather for two cities."
    assert json.loads(s["final"]["output"][2]["arguments"]) == {"location": "Paris", "unit": "c"}


def test_event_over_the_bound_is_an_overflow() -> None:
    tr = translator(Api.CHAT, Api.MESSAGES, bound=1024)
    with pytest.raises(StreamOverflow):
        tr.feed(b"event: content_block_delta\ndata: " + b"x" * 2000)


def test_failure_mid_stream_ends_with_the_client_terminator() -> None:
    for client, upstream, last in ((Api.CHAT, Api.MESSAGES, "[DONE]"), (Api.MESSAGES, Api.CHAT, "error"),
                                   (Api.RESPONSES, Api.CHAT, "response.failed")):
        tr = translator(client, upstream)
        data = fixture("anthropic_text.sse" if upstream is Api.MESSAGES else "openai_text.sse")
        tr.feed(data[: len(data) // 2])
        evs = events(tr.fail("upstream stream failed: upstream_reset", "upstream_reset"))
        assert (evs[-1][1] if last == "[DONE]" else evs[-1][0]) == last
        assert tr.feed(b"data: more\n\n") == b"" and tr.finish() == b""


def test_truncated_upstream_is_an_error_not_a_complete_answer() -> None:
    data = fixture("anthropic_text.sse")
    cut = data.index(b"event: message_delta")
    evs = events(run(translator(Api.CHAT, Api.MESSAGES), [data[:cut]]))
    assert "error" in evs[-2][1] and evs[-1][1] == "[DONE]"


@pytest.mark.parametrize(("client", "upstream", "name"), CASES[:4])
def test_crlf_and_cr_framing_decode_the_same(client: Api, upstream: Api, name: str) -> None:
    data = fixture(name)
    want = _stable(run(translator(client, upstream), [data]))
    for sep in (b"\r\n", b"\r"):
        other = data.replace(b"\n", sep)
        got = [_stable(run(translator(client, upstream), [other[:i], other[i:]])) for i in range(0, len(other), 37)]
        assert all(g == want for g in got)


def test_missing_final_blank_line_at_eof_is_tolerated() -> None:
    data = fixture("openai_text.sse").rstrip(b"\n")  # "data: [DONE]" without its blank line
    evs = events(run(translator(Api.MESSAGES, Api.CHAT), [data]))
    assert [n for n, _ in evs][-2:] == ["message_delta", "message_stop"]


def test_keepalives_become_each_protocols_own_kind() -> None:
    # Anthropic ping -> an SSE comment for chat clients (chat has no ping event).
    out = run(translator(Api.CHAT, Api.MESSAGES), [fixture("anthropic_text.sse")])
    assert b"\n: ping\n\n" in out
    # An upstream keep-alive comment -> Anthropic's ping event (after message_start only).
    evs = events(run(translator(Api.MESSAGES, Api.CHAT), [b": keep-alive\n\n", fixture("openai_text.sse")]))
    names = [n for n, _ in evs]
    assert names[0] == "message_start" and "ping" in names
    assert evs[names.index("ping")][1] == {"type": "ping"}


def test_streamed_refusal_is_carried_as_text() -> None:
    chunk = {"id": "c1", "object": "chat.completion.chunk", "model": "m",
             "choices": [{"index": 0, "delta": {"refusal": "I can't help with that."}, "finish_reason": None}]}
    fin = {"id": "c1", "object": "chat.completion.chunk", "model": "m",
           "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    data = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in (chunk, fin)) + b"data: [DONE]\n\n"
    s = _anthropic_summary(events(run(translator(Api.MESSAGES, Api.CHAT), [data])))
    assert [(b["type"], b["partial"]) for b in s["blocks"]] == [("text", "I can't help with that.")]


@pytest.mark.parametrize(("client", "upstream", "name"), [
    (Api.CHAT, Api.MESSAGES, "anthropic_text.sse"), (Api.CHAT, Api.MESSAGES, "anthropic_tools.sse"),
    (Api.MESSAGES, Api.CHAT, "openai_text.sse"), (Api.RESPONSES, Api.MESSAGES, "anthropic_error.sse"),
    (Api.MESSAGES, Api.CHAT, "openai_error.sse")])
def test_translator_reads_the_providers_usage_and_errors_as_the_relay_tap_does(
        client: Api, upstream: Api, name: str) -> None:
    from sluicegate.inference.sse import SseTap

    raw = fixture(name)
    tap = SseTap()
    tap.feed(raw)
    for cut in range(1, len(raw), 7):  # the same figures at any read split
        tr = translator(client, upstream)
        run(tr, [raw[:cut], raw[cut:]])
        assert (tr.usage.input_tokens, tr.usage.output_tokens) == (tap.usage.input_tokens, tap.usage.output_tokens)
        assert tr.usage.cache_read_tokens == tap.usage.cache_read_tokens
        assert tr.saw_error == tap.saw_error == ("error" in name)
    assert "error" in name or tap.usage.output_tokens


@pytest.mark.parametrize("chunk, message", [
    (b'{"error": {"message": "quota exhausted", "type": "insufficient_quota"}}', "quota exhausted"),
    (b'{"error": "plain string error"}', "plain string error"),
    (b'{"error": {"message": null}}', "upstream error"),
])
def test_chat_error_chunk_mid_stream_to_messages_and_responses(chunk: bytes, message: str) -> None:
    """A chat provider's error chunk after some text (both error spellings): the Messages client gets an error
    event, the Responses client response.failed, each with the provider's message."""
    text = (b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
            b'"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}\n\n')
    pieces = [text, b"data: " + chunk + b"\n\n"]
    evs = events(run(translator(Api.MESSAGES, Api.CHAT), pieces))
    assert evs[-1][0] == "error" and evs[-1][1]["error"]["message"] == message
    assert evs[-1][1]["error"]["type"] == "api_error" and "message_stop" not in [n for n, _ in evs]
    evs = events(run(translator(Api.RESPONSES, Api.CHAT), pieces))
    failed = [o for n, o in evs if n == "response.failed"]
    assert len(failed) == 1 and failed[0]["response"]["error"]["message"] == message
