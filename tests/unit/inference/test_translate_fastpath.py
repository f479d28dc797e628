"""The fast path for text and tool-argument deltas (a stage's prebuilt frame with the provider's escaped string
spliced in) gives the same client events as the general path (decode, stages, encode), for every recorded-shape
stream and for any text or arguments a provider may send; shapes it does not know take the general path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.inference.protocol import Api
from sluicegate.inference.translate import Ctx, StreamTranslator, route_for
from sluicegate.inference.translate.stream import ANTHROPIC_ARGS, ANTHROPIC_TEXT, CHAT_ARGS, CHAT_TEXT

DATA = Path(__file__).resolve().parents[2] / "data" / "translate"
ROUTES = [(Api.CHAT, Api.MESSAGES), (Api.MESSAGES, Api.CHAT), (Api.RESPONSES, Api.CHAT),
          (Api.RESPONSES, Api.MESSAGES)]


def make(client: Api, upstream: Api, fast: bool, include_usage: bool = True) -> StreamTranslator:
    route = route_for(client, upstream)
    assert route is not None
    return StreamTranslator(route.stages(Ctx("anthropic", include_usage=include_usage)),
                            upstream_chat=upstream is Api.CHAT, client_chat=client is Api.CHAT,
                            max_event_bytes=1 << 20, fast=fast)


def events(raw: bytes) -> list[tuple[str, Any]]:
    """Every client event parsed (keep-alive comments kept as such): equal events, whatever the escaping."""
    out: list[tuple[str, Any]] = []
    for block in raw.split(b"\n\n"):
        if not block:
            continue
        if block.startswith(b":"):
            out.append(("comment", block.decode()))
            continue
        name, data = "", ""
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: "):
                data = line[6:].decode()
        obj = "[DONE]" if data == "[DONE]" else json.loads(data)
        if isinstance(obj, dict):
            obj.pop("created", None)
            if isinstance(obj.get("response"), dict):
                obj["response"].pop("created_at", None)
        out.append((name, obj))
    return out


def both(client: Api, upstream: Api, pieces: list[bytes], include_usage: bool = True) -> tuple[bytes, bytes]:
    fast, slow = make(client, upstream, True, include_usage), make(client, upstream, False, include_usage)
    a = b"".join(fast.feed(p) for p in pieces) + fast.finish()
    b = b"".join(slow.feed(p) for p in pieces) + slow.finish()
    assert (fast.usage, fast.saw_error, fast.events_in) == (slow.usage, slow.saw_error, slow.events_in)
    assert fast.dropped == slow.dropped
    return a, b


FIXTURES = {Api.MESSAGES: ["anthropic_text.sse", "anthropic_tools.sse", "anthropic_length.sse",
                           "anthropic_error.sse"],
            Api.CHAT: ["openai_text.sse", "openai_tools.sse", "openai_reasoning.sse", "openai_error.sse"]}


@pytest.mark.parametrize(("client", "upstream"), ROUTES)
@pytest.mark.parametrize("include_usage", [True, False])
def test_fast_path_gives_the_general_paths_events_on_every_fixture(client: Api, upstream: Api,
                                                                   include_usage: bool) -> None:
    for name in FIXTURES[upstream]:
        data = (DATA / name).read_bytes()
        for pieces in ([data], [data[i:i + 1] for i in range(len(data))],
                       [e + b"\n\n" for e in data.split(b"\n\n") if e]):
            fast, slow = both(client, upstream, pieces, include_usage)
            assert events(fast) == events(slow), name


def test_fast_path_is_taken_for_the_providers_text_deltas() -> None:
    # The recorded shapes of both providers (and the built-in mock's) match the fast-path patterns.
    for name, pattern in (("anthropic_text.sse", ANTHROPIC_TEXT), ("openai_text.sse", CHAT_TEXT)):
        datas = [line[6:].decode() for line in (DATA / name).read_bytes().split(b"\n")
                 if line.startswith(b"data: ") and (b"text_delta" in line or b'"content":"H' in line)]
        assert datas and all(pattern.fullmatch(d) for d in datas), name
    mock_chat = ('{"id":"chatcmpl-mock","object":"chat.completion.chunk","created":1,"model":"m",'
                 '"choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}],"usage":null}')
    assert CHAT_TEXT.fullmatch(mock_chat)
    for name, pattern in (("anthropic_tools.sse", ANTHROPIC_ARGS), ("openai_tools.sse", CHAT_ARGS)):
        datas = [line[6:].decode() for line in (DATA / name).read_bytes().split(b"\n")
                 if line.startswith(b"data: ") and (b"input_json_delta" in line or b'{"arguments":' in line)]
        assert datas and all(pattern.fullmatch(d) for d in datas), name
    # Taken for real: the fast path splices the provider's text as sent (raw UTF-8 here), the general path
    # re-encodes it as ASCII escapes.
    for client, upstream in ROUTES:
        name = "anthropic_text.sse" if upstream is Api.MESSAGES else "openai_text.sse"
        fast, slow = both(client, upstream, [(DATA / name).read_bytes()])
        assert "café ✓".encode() in fast and "café".encode() not in slow, (client, upstream)


@pytest.mark.parametrize("text", [
    '{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"x"},'
    '"finish_reason":null}],"usage":{"prompt_tokens":1}}',  # a usage object: the general path reads it
    '{"error":"boom","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}',
    '{"type":"error","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}',  # the error tap
    '{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]}',  # a finish reason
    '{"choices":[{"index":1,"delta":{"content":"x"},"finish_reason":null}]}',  # another choice
    '{"choices":[{"index":0,"delta":{"content":"a\\u12"},"finish_reason":null}]}',  # a broken escape
    '{"choices":[{"index":0,"delta":{"content":"a\x01"},"finish_reason":null}]}',  # a raw control character
    '{"choices":[{"index":0,"delta":{"content":"a","reasoning_content":"r"},"finish_reason":null}]}',
])
def test_other_chat_shapes_take_the_general_path(text: str) -> None:
    assert CHAT_TEXT.fullmatch(text) is None


@pytest.mark.parametrize("text", [
    '{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"x"}}',
    '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a\\"}}',
    '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"},"usage":{}}',
])
def test_other_anthropic_shapes_take_the_general_path(text: str) -> None:
    assert ANTHROPIC_TEXT.fullmatch(text) is None


def _anthropic_stream(texts: list[str], ascii_: bool) -> bytes:
    def ev(obj: dict[str, Any]) -> bytes:
        return (b"event: " + obj["type"].encode() + b"\ndata: "
                + json.dumps(obj, separators=(",", ":"), ensure_ascii=ascii_).encode() + b"\n\n")
    out = [ev({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                                    "content": [], "model": "m", "usage": {"input_tokens": 3}}}),
           ev({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})]
    out += [ev({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}})
            for t in texts]
    out += [ev({"type": "content_block_stop", "index": 0}),
            ev({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}}),
            ev({"type": "message_stop"})]
    return b"".join(out)


def _chat_stream(texts: list[str], ascii_: bool) -> bytes:
    def ev(obj: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps(obj, separators=(",", ":"), ensure_ascii=ascii_).encode() + b"\n\n"
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    out = [ev({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "finish_reason": None}], "usage": None})]
    out += [ev({**base, "choices": [{"index": 0, "delta": {"content": t}, "logprobs": None, "finish_reason": None}],
                "usage": None}) for t in texts]
    out += [ev({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None}),
            ev({**base, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}}),
            b"data: [DONE]\n\n"]
    return b"".join(out)


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(st.text(max_size=12), min_size=1, max_size=6), ascii_=st.booleans(),
       route=st.sampled_from(ROUTES), cut=st.integers(min_value=0, max_value=10_000))
def test_any_text_gives_the_same_events_on_both_paths(texts: list[str], ascii_: bool, route: tuple[Api, Api],
                                                      cut: int) -> None:
    client, upstream = route
    data = (_anthropic_stream if upstream is Api.MESSAGES else _chat_stream)(texts, ascii_)
    cut %= len(data) + 1
    fast, slow = both(client, upstream, [data[:cut], data[cut:]])
    got = events(fast)
    assert got == events(slow)
    # and the text arrives whole, as sent (quotes, backslashes, controls, astral characters and all)
    if client is Api.CHAT:
        text = "".join((o["choices"][0]["delta"].get("content") or "") for _, o in got
                       if isinstance(o, dict) and o.get("choices"))
    elif client is Api.MESSAGES:
        text = "".join(o["delta"]["text"] for n, o in got if n == "content_block_delta")
    else:
        text = next(o["text"] for n, o in got if n == "response.output_text.done") if "".join(texts) else ""
        assert text == "".join(o["delta"] for n, o in got if n == "response.output_text.delta")
    assert text == "".join(texts)


def _anthropic_tools(calls: list[list[str]], ascii_: bool, interleave: bool = False) -> bytes:
    """Parallel tool_use blocks after a text block, one after the other (as the Messages API sends them)."""
    def ev(obj: dict[str, Any]) -> bytes:
        return (b"event: " + obj["type"].encode() + b"\ndata: "
                + json.dumps(obj, separators=(",", ":"), ensure_ascii=ascii_).encode() + b"\n\n")
    out = [ev({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                                    "content": [], "model": "m", "usage": {"input_tokens": 3}}}),
           ev({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
           ev({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ok"}}),
           ev({"type": "content_block_stop", "index": 0})]
    for i, pieces in enumerate(calls):
        out.append(ev({"type": "content_block_start", "index": i + 1, "content_block": {
            "type": "tool_use", "id": f"toolu_{i}", "name": f"f{i}", "input": {}}}))
        out += [ev({"type": "content_block_delta", "index": i + 1,
                    "delta": {"type": "input_json_delta", "partial_json": piece}}) for piece in pieces]
        out.append(ev({"type": "content_block_stop", "index": i + 1}))
    out += [ev({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 5}}),
            ev({"type": "message_stop"})]
    return b"".join(out)


def _chat_tools(calls: list[list[str]], ascii_: bool, interleave: bool = False) -> bytes:
    """Parallel tool calls: each opened then its arguments, or (``interleave``) all opened, then their argument
    pieces round-robin (some OpenAI-compatible servers)."""
    def ev(obj: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps(obj, separators=(",", ":"), ensure_ascii=ascii_).encode() + b"\n\n"
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return ev({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                   "usage": None})
    def opening(i: int) -> bytes:
        return chunk({"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function",
                                      "function": {"name": f"f{i}", "arguments": ""}}]})

    def piece(i: int, text: str) -> bytes:
        return chunk({"tool_calls": [{"index": i, "function": {"arguments": text}}]})
    out = [chunk({"role": "assistant", "content": "ok"})]
    if interleave:
        out += [opening(i) for i in range(len(calls))]
        out += [piece(i, pieces[j]) for j in range(max(map(len, calls), default=0))
                for i, pieces in enumerate(calls) if j < len(pieces)]
    else:
        for i, pieces in enumerate(calls):
            out += [opening(i)] + [piece(i, p) for p in pieces]
    out += [chunk({}, "tool_calls"),
            ev({**base, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}}),
            b"data: [DONE]\n\n"]
    return b"".join(out)


@settings(max_examples=150, deadline=None)
@given(calls=st.lists(st.lists(st.text(max_size=10), max_size=5), min_size=1, max_size=3), ascii_=st.booleans(),
       route=st.sampled_from(ROUTES), cut=st.integers(min_value=0, max_value=10_000), interleave=st.booleans())
def test_any_tool_arguments_give_the_same_events_on_both_paths(calls: list[list[str]], ascii_: bool,
                                                               route: tuple[Api, Api], cut: int,
                                                               interleave: bool) -> None:
    client, upstream = route
    data = (_anthropic_tools if upstream is Api.MESSAGES else _chat_tools)(calls, ascii_, interleave)
    cut %= len(data) + 1
    fast, slow = both(client, upstream, [data[:cut], data[cut:]])
    got = events(fast)
    assert got == events(slow)
    # each call's arguments arrive whole, in order, on its own index
    args: dict[int, str] = {}
    if client is Api.CHAT:
        for _, o in got:
            for ch in (o.get("choices") or []) if isinstance(o, dict) else []:
                for tc in ch["delta"].get("tool_calls") or []:
                    args[tc["index"]] = args.get(tc["index"], "") + tc["function"].get("arguments", "")
    elif client is Api.MESSAGES:
        blocks = [o["index"] for n, o in got if n == "content_block_start" and o["content_block"]["type"] == "tool_use"]
        open_block = -1  # Messages blocks are sequential: every delta goes to the one open block
        for n, o in got:
            if n == "content_block_start":
                assert open_block == -1
                open_block = o["index"]
            elif n == "content_block_stop":
                assert o["index"] == open_block
                open_block = -1
            elif n == "content_block_delta":
                assert o["index"] == open_block
                if o["delta"]["type"] == "input_json_delta":
                    args[o["index"]] = args.get(o["index"], "") + o["delta"]["partial_json"]
        assert open_block == -1
        args = {i: args.get(b, "") for i, b in enumerate(blocks)}
    else:
        done = {o["item"]["call_id"]: o["item"]["arguments"] for n, o in got
                if n == "response.output_item.done" and o["item"]["type"] == "function_call"}
        final = {o["call_id"]: o["arguments"] for n, o in got if n == "response.completed"
                 for o in o["response"]["output"] if o["type"] == "function_call"}
        # deltas on each item's own output_index / item_id, none after its .done
        items = {o["output_index"]: o["item"]["id"] for n, o in got if n == "response.output_item.added"}
        streamed: dict[str, str] = {}
        closed: set[str] = set()
        for n, o in got:
            if n == "response.function_call_arguments.delta":
                assert items[o["output_index"]] == o["item_id"] and o["item_id"] not in closed
                streamed[o["item_id"]] = streamed.get(o["item_id"], "") + o["delta"]
            elif n == "response.function_call_arguments.done":
                assert o["arguments"] == streamed.get(o["item_id"], "")
                closed.add(o["item_id"])
        assert final == done
        args = {i: done[cid] for i, cid in enumerate(sorted(done))}
    assert args == {i: "".join(p) for i, p in enumerate(calls)}


def test_tool_argument_fast_path_is_taken() -> None:
    calls = [["{\"city\": \"Zürich\"", "}"], ["{\"q\": \"ünï\"}"]]
    for client, upstream in ROUTES:
        data = (_anthropic_tools if upstream is Api.MESSAGES else _chat_tools)(calls, False)
        fast, slow = both(client, upstream, [data])
        assert "Zürich".encode() in fast and "Zürich".encode() not in slow, (client, upstream)
