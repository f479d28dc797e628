"""Protocol translation end to end: the official SDKs against the gateway, the gateway against a replay
provider emitting recorded-shape Anthropic and OpenAI streams, all over real sockets. Each test checks the
SDK sees the same text, tool calls, finish reason and usage the provider sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from harness import GatewayServer, raw_request, settings_for
from tests.support.replay import ReplayLog, build_replay
from tests.support.servers import ThreadedApp

from sluicegate.inference import metrics as m

MSG: list[Any] = [{"role": "user", "content": "Weather in Paris and Tokyo?"}]
OA_TOOL: Any = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                                 "parameters": {"type": "object",
                                                                "properties": {"location": {"type": "string"}}}}}
AN_TOOL: Any = {"name": "get_weather", "description": "Weather for a city",
                "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}
RS_TOOL: Any = {"type": "function", "name": "get_weather", "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}


class Env:
    def __init__(self) -> None:
        self.log = ReplayLog()
        self.replay = ThreadedApp(build_replay(self.log)).start()
        base = self.replay.url + "/v1"
        models: list[dict[str, Any]] = []
        for stem in ("anthropic_text", "anthropic_tools", "anthropic_error", "anthropic_length",
                     "anthropic_message", "status429", "status400", "reset-anthropic_tools",
                     "json-anthropic_message"):
            models.append({"name": f"an-{stem}", "targets": [{"provider": "an", "model": f"replay-{stem}"}],
                           "default_max_tokens": 777})
        for stem in ("openai_text", "openai_tools", "openai_tools_interleaved", "openai_reasoning",
                     "openai_error", "openai_completion", "status429", "reset-openai_tools", "json-openai_completion"):
            models.append({"name": f"oc-{stem}", "targets": [{"provider": "oc", "model": f"replay-{stem}"}]})
        models += [
            {"name": "never", "translate": "never", "targets": [{"provider": "an", "model": "replay-anthropic_text"}]},
            {"name": "dropper", "drop_params": ["logprobs"],
             "targets": [{"provider": "an", "model": "replay-anthropic_text"}]},
            # First target needs translation and is refused by "never"; the second speaks the client's API.
            {"name": "never-fallback", "translate": "never",
             "targets": [{"provider": "an", "model": "replay-anthropic_text"},
                         {"provider": "oc", "model": "replay-openai_text"}]},
        ]
        inference = {
            "path_prefix": "/llm",
            "providers": [
                {"name": "an", "kind": "anthropic", "base_url": base, "api_key": "sk-ant-live-translate"},
                {"name": "oc", "kind": "openai-compatible", "base_url": base, "auth": "none"},
            ],
            "models": models,
            "retry": {"max_attempts": 1},
        }
        self.gw = GatewayServer(settings_for(inference)).start()

    def stop(self) -> None:
        self.gw.stop()
        self.replay.stop()


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    e = Env()
    yield e
    e.stop()


def oai(env: Env) -> openai.OpenAI:
    return openai.OpenAI(base_url=env.gw.base + "/llm/v1", api_key="client-placeholder", max_retries=0)


def ant(env: Env) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=env.gw.base + "/llm", api_key="client-placeholder", max_retries=0)


# ---- direction 1: OpenAI chat client -> Anthropic provider ------------------------------------------------

def test_openai_chat_stream_text_to_anthropic(env: Env) -> None:
    chunks = list(oai(env).chat.completions.create(
        model="an-anthropic_text", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "system", "content": "Be brief."}, *MSG], stop=["END"], temperature=0.3, user="u-9"))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "Hello, café ✓ — world!"
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (25, 15)
    path, headers, body = env.log.last()
    assert path == "/v1/messages"
    assert headers["x-api-key"] == "sk-ant-live-translate" and headers["anthropic-version"] == "2023-06-01"
    assert body["model"] == "replay-anthropic_text" and body["system"] == [{"type": "text", "text": "Be brief."}]
    assert body["max_tokens"] == 777 and body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "u-9"} and body["temperature"] == 0.3
    # The usage ledger records the provider's own figures.
    u = env.gw.gateway.last_usage
    assert u is not None and (u.input_tokens, u.output_tokens) == (25, 15)


def test_openai_chat_stream_helper_parallel_tools_from_anthropic(env: Env) -> None:
    with oai(env).chat.completions.stream(model="an-anthropic_tools", messages=MSG, tools=[OA_TOOL],
                                          stream_options={"include_usage": True}) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check both."
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls  # type: ignore[union-attr]
            ] == [
        ("toolu_01Paris", "get_weather", {"location": "Paris", "unit": "c"}),
        ("toolu_02Tokyo", "get_weather", {"location": "Tokyo"})]
    assert final.usage is not None and final.usage.completion_tokens == 89
    assert final.usage.prompt_tokens == 472 + 100 + 2048
    _, _, body = env.log.last()
    assert body["tools"][0]["input_schema"]["properties"] == {"location": {"type": "string"}}
    assert body["tool_choice"] == {"type": "auto"}


def test_openai_chat_whole_from_anthropic(env: Env) -> None:
    r = oai(env).chat.completions.create(model="an-anthropic_message", messages=MSG, max_tokens=50)
    assert r.choices[0].message.content == "Checking."
    assert r.choices[0].finish_reason == "tool_calls"
    calls = r.choices[0].message.tool_calls or []
    assert json.loads(calls[0].function.arguments) == {"location": "Lima"}
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens) == (50, 22)
    assert env.log.last()[2]["max_tokens"] == 50


def test_openai_sees_anthropic_error_event_and_the_stream_ends_cleanly(env: Env) -> None:
    with pytest.raises(openai.APIError) as err:
        for _ in oai(env).chat.completions.create(model="an-anthropic_error", messages=MSG, stream=True):
            pass
    assert "Overloaded" in str(err.value)
    body = json.dumps({"model": "an-anthropic_error", "stream": True, "messages": MSG}).encode()
    res = raw_request(env.gw.port, "POST", "/llm/v1/chat/completions", body,
                      {"content-type": "application/json"})
    assert res.complete and res.body.endswith(b"data: [DONE]\n\n")


def test_upstream_reset_mid_stream_is_an_error_event_then_a_clean_end(env: Env) -> None:
    body = json.dumps({"model": "an-reset-anthropic_tools", "stream": True, "messages": MSG}).encode()
    res = raw_request(env.gw.port, "POST", "/llm/v1/chat/completions", body, {"content-type": "application/json"})
    assert res.status == 200 and res.complete
    assert b"upstream_reset" in res.body and res.body.endswith(b"data: [DONE]\n\n")
    body = json.dumps({"model": "oc-reset-openai_tools", "stream": True, "max_tokens": 9,
                       "messages": MSG}).encode()
    res = raw_request(env.gw.port, "POST", "/llm/v1/messages", body, {"content-type": "application/json"})
    assert res.status == 200 and res.complete and b"event: error" in res.body


def test_rate_limit_maps_to_the_client_shape_and_headers_pass(env: Env) -> None:
    with pytest.raises(openai.RateLimitError) as err:
        oai(env).chat.completions.create(model="an-status429", messages=MSG)
    assert err.value.status_code == 429 and "replayed 429" in str(err.value)
    assert err.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
    with pytest.raises(anthropic.RateLimitError) as aerr:
        ant(env).messages.create(model="oc-status429", max_tokens=5, messages=MSG)
    assert aerr.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert aerr.value.body["error"]["message"] == "replayed 429"  # type: ignore[index]


def test_non_retryable_upstream_error_is_reshaped(env: Env) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oai(env).chat.completions.create(model="an-status400", messages=MSG)
    assert "replayed 400" in str(err.value)


# ---- direction 2: Anthropic client -> OpenAI-compatible provider ------------------------------------------

def test_anthropic_stream_helper_parallel_tools_from_chat(env: Env) -> None:
    with ant(env).messages.stream(model="oc-openai_tools", max_tokens=300, messages=MSG, tools=[AN_TOOL],
                                  system="Use tools.") as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [(b.id, b.name, b.input) for b in uses] == [("call_Paris01", "get_weather", {"location": "Paris"}),
                                                       ("call_Tokyo02", "get_weather", {"location": "Tokyo"})]
    assert final.usage.output_tokens == 40
    assert final.usage.input_tokens == 120 - 64 and final.usage.cache_read_input_tokens == 64
    path, headers, body = env.log.last()
    assert path == "/v1/chat/completions" and "authorization" not in {k.lower() for k in headers}
    assert body["messages"][0] == {"role": "system", "content": "Use tools."}
    assert body["max_tokens"] == 300 and body["stream_options"] == {"include_usage": True}
    assert body["tools"][0]["function"]["parameters"]["properties"] == {"location": {"type": "string"}}


def test_anthropic_stream_text_and_thinking_from_chat(env: Env) -> None:
    with ant(env).messages.stream(model="oc-openai_reasoning", max_tokens=20, messages=MSG) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "The answer is 4."
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "Think: 2+2 is 4."  # type: ignore[union-attr]
    assert final.stop_reason == "max_tokens"


def test_anthropic_whole_from_chat(env: Env) -> None:
    msg = ant(env).messages.create(model="oc-openai_completion", max_tokens=50, messages=MSG)
    assert [b.type for b in msg.content] == ["text", "tool_use"]
    assert msg.content[1].input == {"location": "Lima"}  # type: ignore[union-attr]
    assert msg.stop_reason == "tool_use"
    assert (msg.usage.input_tokens, msg.usage.output_tokens, msg.usage.cache_read_input_tokens) == (40, 22, 10)


def test_anthropic_sees_chat_error_chunk(env: Env) -> None:
    with pytest.raises(anthropic.APIStatusError) as err, \
            ant(env).messages.stream(model="oc-openai_error", max_tokens=5, messages=MSG) as stream:
        stream.get_final_message()
    assert "server had an error" in str(err.value)


# ---- direction 3: Responses client -> chat and Anthropic providers ----------------------------------------

@pytest.mark.parametrize("model", ["oc-openai_tools", "an-anthropic_tools"])
def test_responses_stream_tools(env: Env, model: str) -> None:
    names: list[str] = []
    with oai(env).responses.stream(model=model, input="Weather in Paris and Tokyo?", tools=[RS_TOOL],
                                   instructions="Use tools.", store=False) as stream:
        for event in stream:
            names.append(event.type)
        final = stream.get_final_response()
    assert names[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert names[-1] == "response.completed"
    calls = [o for o in final.output if o.type == "function_call"]
    assert json.loads(calls[0].arguments)["location"] == "Paris"
    assert [c.call_id for c in calls] == (["call_Paris01", "call_Tokyo02"] if model.startswith("oc")
                                          else ["toolu_01Paris", "toolu_02Tokyo"])
    assert final.usage is not None
    assert final.usage.output_tokens == (40 if model.startswith("oc") else 89)
    _, _, body = env.log.last()
    if model.startswith("oc"):
        assert body["messages"][0] == {"role": "system", "content": "Use tools."}
    else:
        assert body["system"] == [{"type": "text", "text": "Use tools."}]


INTERLEAVED = [("call_Paris01", "get_weather", '{"location": "Paris"}'),
               ("call_Tokyo02", "get_weather", '{"location": "Tōkyō 東京"}'),
               ("call_Lima03", "get_time", '{"city": "Lima", "tz": "America/Lima"}')]


def test_responses_stream_interleaved_parallel_calls(env: Env) -> None:
    """All calls opened first, then their argument deltas interleaved by index: every call's arguments are
    exact in its own .done events and in the final response, deltas on its own output_index."""
    done: dict[str, str] = {}
    items_done: dict[str, str] = {}
    deltas: dict[int, str] = {}
    added: dict[int, str] = {}
    with oai(env).responses.stream(model="oc-openai_tools_interleaved", input="Weather and time?",
                                   tools=[RS_TOOL], store=False) as stream:
        for event in stream:
            if event.type == "response.output_item.added":
                added[event.output_index] = event.item.id  # type: ignore[union-attr]
            elif event.type == "response.function_call_arguments.delta":
                assert added[event.output_index] == event.item_id
                deltas[event.output_index] = deltas.get(event.output_index, "") + event.delta
            elif event.type == "response.function_call_arguments.done":
                done[event.item_id] = event.arguments
            elif event.type == "response.output_item.done" and event.item.type == "function_call":
                items_done[event.item.call_id] = event.item.arguments
        final = stream.get_final_response()
    calls = [o for o in final.output if o.type == "function_call"]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == INTERLEAVED
    assert items_done == {cid: args for cid, _, args in INTERLEAVED}
    assert sorted(done.values()) == sorted(args for _, _, args in INTERLEAVED)
    assert [deltas[i] for i in sorted(deltas)] == [args for _, _, args in INTERLEAVED]
    assert final.status == "completed" and final.usage is not None and final.usage.output_tokens == 51


def test_anthropic_stream_interleaved_parallel_calls_from_chat(env: Env) -> None:
    """The same stream to a Messages client: sequential blocks (the SDK's accumulator would take a delta
    after a block's stop as well, so the raw sequence is checked too), every input exact."""
    seq: list[tuple[str, int]] = []
    with ant(env).messages.stream(model="oc-openai_tools_interleaved", max_tokens=300, messages=MSG,
                                  tools=[AN_TOOL]) as stream:
        for event in stream:
            if event.type in ("content_block_start", "content_block_delta", "content_block_stop"):
                seq.append((event.type, event.index))
        final = stream.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [(b.id, b.name, b.input) for b in uses] == [(c, n, json.loads(a)) for c, n, a in INTERLEAVED]
    open_block = -1
    for typ, index in seq:
        if typ == "content_block_start":
            assert open_block == -1
            open_block = index
        else:
            assert index == open_block, seq
            if typ == "content_block_stop":
                open_block = -1
    assert final.stop_reason == "tool_use" and final.usage.output_tokens == 51


def test_responses_text_and_incomplete_from_anthropic(env: Env) -> None:
    # As from OpenAI itself, a length stop ends with response.incomplete (the helper's
    # get_final_response() only accepts response.completed), carrying the output and the reason.
    with oai(env).responses.stream(model="an-anthropic_length", input="Count", max_output_tokens=2) as stream:
        evs = list(stream)
    text = "".join(e.delta for e in evs if e.type == "response.output_text.delta")
    assert evs[-1].type == "response.incomplete"
    final = evs[-1].response
    assert text == "One two" and final.status == "incomplete" and final.output_text == "One two"
    assert final.incomplete_details is not None and final.incomplete_details.reason == "max_output_tokens"
    assert env.log.last()[2]["max_tokens"] == 2


def test_responses_whole_from_chat(env: Env) -> None:
    r = oai(env).responses.create(model="oc-openai_completion", input="Weather in Lima?", tools=[RS_TOOL])
    assert r.output_text == "Checking."
    calls = [o for o in r.output if o.type == "function_call"]
    assert calls[0].call_id == "call_Lima03" and json.loads(calls[0].arguments) == {"location": "Lima"}


def test_responses_stateful_and_server_tools_refused(env: Env) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oai(env).responses.create(model="oc-openai_text", input="hi", previous_response_id="resp_123")
    assert "previous_response_id" in str(err.value)
    with pytest.raises(openai.BadRequestError) as err:
        oai(env).responses.create(model="an-anthropic_text", input="hi", tools=[{"type": "web_search"}])
    assert "server-side tool" in str(err.value)


# ---- config: translate = "never", drop_params, unsupported parameters ------------------------------------

def test_translate_never(env: Env) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oai(env).chat.completions.create(model="never", messages=MSG)
    assert "never" in str(err.value) and "'an'" in str(err.value)
    r = oai(env).chat.completions.create(model="never-fallback", messages=MSG, stream=True)
    assert "".join(ch.choices[0].delta.content or "" for ch in r if ch.choices) == "Hello, café ✓ — world!"
    assert env.log.last()[0] == "/v1/chat/completions"


def test_parameters_without_equivalent(env: Env) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oai(env).chat.completions.create(model="an-anthropic_text", messages=MSG, n=2)
    assert "n:" in str(err.value)
    with pytest.raises(anthropic.BadRequestError) as aerr:
        ant(env).messages.create(model="oc-openai_text", max_tokens=5, messages=MSG, extra_body={"top_k": 3})
    assert "top_k" in str(aerr.value)
    dropped = m.TRANSLATED.labels("openai_chat_completions", "anthropic_messages", "yes")
    before = dropped._value.get()
    raw = oai(env).chat.completions.with_raw_response.create(model="dropper", messages=MSG, logprobs=True,
                                                             stream=True)
    assert raw.headers["x-sluicegate-dropped"] == "logprobs"
    assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices) == "Hello, café ✓ — world!"
    assert "logprobs" not in env.log.last()[2]
    assert dropped._value.get() == before + 1


def test_same_protocol_stays_a_byte_relay(env: Env) -> None:
    body = json.dumps({"model": "an-anthropic_text", "stream": True, "max_tokens": 5, "messages": MSG}).encode()
    res = raw_request(env.gw.port, "POST", "/llm/v1/messages", body, {"content-type": "application/json"})
    from tests.support.replay import fixture_bytes

    assert res.body == fixture_bytes("anthropic_text.sse")
    assert "x-sluicegate-dropped" not in res.headers


def test_models_lists_each_model_once(env: Env) -> None:
    ids = [m.id for m in oai(env).models.list()]
    assert len(ids) == len(set(ids)) and "never-fallback" in ids and "an-anthropic_text" in ids


def test_response_cap_mid_translated_stream_ends_cleanly(env: Env) -> None:
    gw = GatewayServer(settings_for({
        "path_prefix": "/llm", "max_response_bytes": 1024,
        "providers": [{"name": "an", "kind": "anthropic", "base_url": env.replay.url + "/v1",
                       "api_key": "sk-ant-live-translate"}],
        "models": [{"name": "m", "targets": [{"provider": "an", "model": "replay-anthropic_tools"}]}]})).start()
    try:
        body = json.dumps({"model": "m", "stream": True, "messages": MSG}).encode()
        res = raw_request(gw.port, "POST", "/llm/v1/chat/completions", body, {"content-type": "application/json"})
        assert res.status == 200 and res.complete
        assert b'"code":"response_cap"' in res.body and res.body.endswith(b"data: [DONE]\n\n")
        with pytest.raises(openai.APIError) as err:
            c = openai.OpenAI(base_url=gw.base + "/llm/v1", api_key="x", max_retries=0)
            for _ in c.chat.completions.create(model="m", messages=MSG, stream=True):
                pass
        assert "response_cap" in str(err.value)
    finally:
        gw.stop()


def test_whole_answer_to_a_streamed_request_is_replayed_as_a_stream(env: Env) -> None:
    with oai(env).chat.completions.stream(model="an-json-anthropic_message", messages=MSG,
                                          stream_options={"include_usage": True}) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert final.choices[0].message.content == "Checking." and final.choices[0].finish_reason == "tool_calls"
    assert json.loads(calls[0].function.arguments) == {"location": "Lima"}  # type: ignore[union-attr]
    assert final.usage is not None and final.usage.completion_tokens == 22
    with ant(env).messages.stream(model="oc-json-openai_completion", max_tokens=50, messages=MSG) as astream:
        msg = astream.get_final_message()
    assert [b.type for b in msg.content] == ["text", "tool_use"] and msg.stop_reason == "tool_use"
    assert msg.content[1].input == {"location": "Lima"}  # type: ignore[union-attr]
    assert msg.usage.output_tokens == 22
