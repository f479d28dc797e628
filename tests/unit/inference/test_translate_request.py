"""Request translators (dict -> dict) and the non-streamed answer and error translators."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluicegate.inference.protocol import Api, Family
from sluicegate.inference.translate import (
    Ctx,
    TranslateError,
    chat_to_messages,
    choose,
    messages_to_chat,
    responses_to_chat,
    route_for,
    speaks,
    translate_error,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "translate"
SCHEMA = {"type": "object", "properties": {"location": {"type": "string"}}}
TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": SCHEMA}}


def _call(cid: str, args: str) -> dict[str, object]:
    return {"id": cid, "type": "function", "function": {"name": "get_weather", "arguments": args}}


def test_provider_protocols_and_choice() -> None:
    assert choose(Api.CHAT, speaks("openai")) is Api.CHAT
    assert choose(Api.RESPONSES, speaks("openai")) is Api.RESPONSES  # no translation preferred
    assert choose(Api.RESPONSES, speaks("openai-compatible")) is Api.CHAT
    assert choose(Api.RESPONSES, speaks("openai-compatible", ["chat", "responses"])) is Api.RESPONSES
    assert choose(Api.RESPONSES, speaks("anthropic")) is Api.MESSAGES
    assert choose(Api.MESSAGES, speaks("openai-compatible")) is Api.CHAT
    assert choose(Api.CHAT, speaks("anthropic")) is Api.MESSAGES
    assert choose(Api.EMBEDDINGS, speaks("anthropic")) is None
    assert choose(Api.EMBEDDINGS, speaks("openai-compatible")) is None
    assert choose(Api.COUNT_TOKENS, speaks("openai")) is None
    assert route_for(Api.CHAT, Api.CHAT) is None


def test_chat_to_messages_roles_tools_images() -> None:
    body = {
        "model": "x", "temperature": 0.2, "top_p": 0.9, "stop": "END", "user": "u-1",
        "stream": True, "stream_options": {"include_usage": True},
        "tools": [TOOL], "tool_choice": "required", "parallel_tool_calls": False,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
            {"role": "user", "content": "Weather in Paris and Tokyo?"},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.org/cat.jpg"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                _call("call_1", '{"location":"Paris"}'), _call("call_2", '{"location":"Tokyo"}')]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "25C"}]},
        ]}
    ctx = Ctx("anthropic", default_max_tokens=1234)
    out = chat_to_messages.translate(body, ctx)
    assert out["system"] == [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use tools."}]
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]  # merged turns
    user = out["messages"][0]["content"]
    assert user[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    assert user[2] == {"type": "image", "source": {"type": "url", "url": "https://example.org/cat.jpg"}}
    calls = out["messages"][1]["content"]
    assert calls[0] == {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"location": "Paris"}}
    results = out["messages"][2]["content"]
    assert [r["tool_use_id"] for r in results] == ["call_1", "call_2"]
    assert results[1]["content"] == [{"type": "text", "text": "25C"}]
    assert out["max_tokens"] == 1234  # the model's default_max_tokens
    assert out["stop_sequences"] == ["END"]
    assert out["metadata"] == {"user_id": "u-1"}
    assert out["tools"][0]["input_schema"]["properties"]["location"] == {"type": "string"}
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert out["temperature"] == 0.2 and out["top_p"] == 0.9 and out["stream"] is True
    assert ctx.include_usage


@pytest.mark.parametrize(("choice", "expected"), [
    ("auto", {"type": "auto"}), ("none", {"type": "none"}), ("required", {"type": "any"}),
    ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"})])
def test_tool_choice_both_ways(choice: object, expected: dict[str, str]) -> None:
    out = chat_to_messages.translate({"messages": [], "tools": [TOOL], "tool_choice": choice}, Ctx("anthropic"))
    assert out["tool_choice"] == expected
    back = messages_to_chat.translate({"messages": [], "max_tokens": 5, "tools": out["tools"],
                                       "tool_choice": expected}, Ctx("openai-compatible"))
    assert back["tool_choice"] == choice


@pytest.mark.parametrize(("body", "param"), [
    ({"n": 2}, "n"), ({"logprobs": True}, "logprobs"), ({"top_logprobs": 3}, "top_logprobs"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {}}}}, "response_format"),
    ({"frequency_penalty": 0.5}, "frequency_penalty"), ({"seed": 1}, "seed")])
def test_chat_params_without_equivalent_are_refused_or_dropped(body: dict[str, object], param: str) -> None:
    req = {"model": "x", "messages": [{"role": "user", "content": "hi"}], **body}
    with pytest.raises(TranslateError) as err:
        chat_to_messages.translate(dict(req), Ctx("anthropic"))
    assert err.value.param == param and param in str(err.value)
    ctx = Ctx("anthropic", drop_params=frozenset({param}))
    out = chat_to_messages.translate(dict(req), ctx)
    assert param not in out and ctx.dropped == {param}


def test_messages_to_chat() -> None:
    body = {"model": "x", "max_tokens": 300, "system": [{"type": "text", "text": "Sys"}],
            "stop_sequences": ["###"], "temperature": 0.5, "metadata": {"user_id": "u-2"}, "stream": True,
            "tools": [{"name": "get_weather", "description": "W", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Look"},
                                             {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                                                          "data": "AAAA"}}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "Calling."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Oslo"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "3C"},
                    {"type": "text", "text": "And now?"}]}]}
    out = messages_to_chat.translate(body, Ctx("openai"))
    assert out["messages"][0] == {"role": "system", "content": "Sys"}
    image = {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}}
    assert out["messages"][1]["content"][1] == image
    a = out["messages"][2]
    assert a["content"] == "Calling." and a["reasoning_content"] == "hmm"
    assert json.loads(a["tool_calls"][0]["function"]["arguments"]) == {"location": "Oslo"}
    assert out["messages"][3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "3C"}
    assert out["messages"][4] == {"role": "user", "content": "And now?"}
    assert out["max_completion_tokens"] == 300  # kind openai
    assert out["stop"] == ["###"] and out["user"] == "u-2"
    assert out["parallel_tool_calls"] is False
    assert out["stream_options"] == {"include_usage": True}
    compat = messages_to_chat.translate(dict(body), Ctx("openai-compatible"))
    assert compat["max_tokens"] == 300 and "max_completion_tokens" not in compat


def test_messages_server_tools_and_unknown_params_refused() -> None:
    with pytest.raises(TranslateError) as err:
        messages_to_chat.translate({"messages": [], "max_tokens": 1,
                                    "tools": [{"type": "web_search_20250305", "name": "web_search"}]}, Ctx("openai"))
    assert err.value.param == "tools[0].type"
    with pytest.raises(TranslateError) as err:
        messages_to_chat.translate({"messages": [], "max_tokens": 1, "top_k": 5}, Ctx("openai"))
    assert err.value.param == "top_k"


def test_responses_to_chat_and_refusals() -> None:
    body = {"model": "x", "instructions": "Be terse.", "max_output_tokens": 50, "store": False, "stream": True,
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": True}},
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
                      {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
                      {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": "{}"},
                      {"type": "function_call_output", "call_id": "c1", "output": "ok"},
                      {"type": "function_call_output", "call_id": "c2", "output": "ok"}]}
    out = responses_to_chat.translate(body, Ctx("openai-compatible"))
    assert out["messages"][0] == {"role": "system", "content": "Be terse."}
    assert out["messages"][1] == {"role": "user", "content": "Hi"}
    assert [c["id"] for c in out["messages"][2]["tool_calls"]] == ["c1", "c2"]  # parallel calls, one turn
    assert [m["role"] for m in out["messages"][3:]] == ["tool", "tool"]
    assert out["max_tokens"] == 50
    assert out["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert out["response_format"]["json_schema"]["name"] == "w"
    for bad, param in (({"previous_response_id": "resp_1"}, "previous_response_id"),
                       ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
                       ({"store": True}, "store")):
        with pytest.raises(TranslateError) as err:
            responses_to_chat.translate({"model": "x", "input": "hi", **bad}, Ctx("openai-compatible"))
        assert err.value.param == param
    # json_schema reaches a chat provider, but not Anthropic (no structured output there): refused by name.
    route = route_for(Api.RESPONSES, Api.MESSAGES)
    assert route is not None
    with pytest.raises(TranslateError) as err:
        route.request(body, Ctx("anthropic"))
    assert err.value.param == "response_format"


def test_whole_answers() -> None:
    msg = json.loads((DATA / "anthropic_message.json").read_text())
    ctx = Ctx("anthropic")
    r1 = route_for(Api.CHAT, Api.MESSAGES)
    assert r1 is not None
    chat = r1.whole(msg, ctx)
    m = chat["choices"][0]["message"]
    assert m["content"] == "Checking." and m["reasoning_content"] == "Two calls needed."
    assert json.loads(m["tool_calls"][0]["function"]["arguments"]) == {"location": "Lima"}
    assert chat["choices"][0]["finish_reason"] == "tool_calls"
    assert chat["usage"]["prompt_tokens"] == 50 and chat["usage"]["prompt_tokens_details"]["cached_tokens"] == 10
    comp = json.loads((DATA / "openai_completion.json").read_text())
    r2 = route_for(Api.MESSAGES, Api.CHAT)
    assert r2 is not None
    an = r2.whole(comp, ctx)
    assert [b["type"] for b in an["content"]] == ["text", "tool_use"]
    assert an["content"][1]["input"] == {"location": "Lima"} and an["stop_reason"] == "tool_use"
    assert an["usage"] == {"input_tokens": 40, "output_tokens": 22, "cache_read_input_tokens": 10}
    r3 = route_for(Api.RESPONSES, Api.MESSAGES)
    assert r3 is not None
    resp = r3.whole(msg, ctx)
    assert [o["type"] for o in resp["output"]] == ["reasoning", "message", "function_call"]
    assert resp["status"] == "completed" and resp["usage"]["input_tokens"] == 50


def test_error_shapes() -> None:
    anth = b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}'
    status, body = translate_error(429, anth, Family.OPENAI)
    assert status == 429 and json.loads(body)["error"]["message"] == "slow down"
    status, body = translate_error(529, b'{"type":"error","error":{"type":"overloaded_error","message":"busy"}}',
                                   Family.OPENAI)
    assert status == 503
    oa = b'{"error":{"message":"bad key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}'
    status, body = translate_error(401, oa, Family.ANTHROPIC)
    obj = json.loads(body)
    assert status == 401 and obj["type"] == "error" and obj["error"]["message"] == "bad key"


def test_max_tokens_precedence_and_default() -> None:
    def mt(**kw: object) -> object:
        return chat_to_messages.translate({"messages": [], **kw}, Ctx("anthropic", default_max_tokens=99))["max_tokens"]

    assert mt() == 99
    assert mt(max_tokens=50) == 50
    assert mt(max_completion_tokens=70, max_tokens=50) == 70
    assert mt(max_completion_tokens=None, max_tokens=50) == 50
    with pytest.raises(TranslateError) as err:
        mt(max_tokens=0)
    assert err.value.param == "max_tokens"


def test_reasoning_input_items_are_dropped_and_reported() -> None:
    ctx = Ctx("openai-compatible")
    out = responses_to_chat.translate({"model": "x", "input": [
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
        {"role": "user", "content": "go on"}]}, ctx)
    assert out["messages"] == [{"role": "user", "content": "go on"}]
    assert ctx.dropped == {"input.reasoning"}


def test_streamed_messages_and_responses_requests_ask_the_chat_provider_for_usage() -> None:
    """Both request translators to chat: a streamed request streams and asks for the usage chunk (the client's
    protocol reports usage at the end); an unstreamed one asks for neither."""
    msg = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    rsp = {"model": "m", "input": "hi"}
    for translate, body in ((messages_to_chat.translate, msg), (responses_to_chat.translate, rsp)):
        ctx = Ctx("openai-compatible")
        out = translate({**body, "stream": True}, ctx)
        assert out["stream"] is True and out["stream_options"] == {"include_usage": True}
        assert ctx.stream and ctx.include_usage
        ctx = Ctx("openai-compatible")
        out = translate(dict(body), ctx)
        assert "stream" not in out and "stream_options" not in out
        assert not ctx.stream and not ctx.include_usage
