"""The official openai and anthropic SDKs against the gateway, over real sockets."""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
import openai
import pytest
from harness import GatewayServer

from conftest import Mocks

MSG: list[Any] = [{"role": "user", "content": "hi"}]
TEXT = "Hello from the sluicegate mock provider. Streams are relayed byte for byte, café ✓."


def oai(gw: GatewayServer, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base + "/llm/v1", api_key="client-placeholder", max_retries=0, **kw)


def ant(gw: GatewayServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.base + "/llm", api_key="client-placeholder", max_retries=0)


def test_openai_chat_nonstream_and_stream_with_usage(gateway: GatewayServer) -> None:
    c = oai(gateway)
    r = c.chat.completions.create(model="fast", messages=MSG)
    assert r.choices[0].message.content == TEXT
    assert r.model == "mock-1"  # the target's model reached the provider
    assert r.usage is not None and r.usage.total_tokens == 12
    assert gateway.gateway.last_usage is not None and gateway.gateway.last_usage.output_tokens == 5
    chunks = list(c.chat.completions.create(model="fast", messages=MSG, stream=True,
                                            stream_options={"include_usage": True}))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == TEXT
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8
    u = gateway.gateway.last_usage
    assert u is not None and (u.input_tokens, u.output_tokens) == (7, 8)


def test_openai_completions_responses_embeddings_models(gateway: GatewayServer) -> None:
    c = oai(gateway)
    comp = "".join(ch.choices[0].text for ch in c.completions.create(model="fast", prompt="x", stream=True))
    assert comp == TEXT
    events = list(c.responses.create(model="fast", input="hi", stream=True))
    assert events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == TEXT
    u = gateway.gateway.last_usage
    assert u is not None and (u.input_tokens, u.output_tokens) == (7, 8)
    resp = c.responses.create(model="fast", input="hi")
    assert resp.output_text == TEXT
    emb = c.embeddings.create(model="fast", input=["a", "b"])
    assert len(emb.data) == 2 and emb.data[0].embedding == [0.1, -0.2, 0.3]
    names = [mdl.id for mdl in c.models.list()]
    assert "fast" in names and "fb-429" in names
    assert c.models.retrieve("fast").id == "fast"
    with pytest.raises(openai.NotFoundError):
        c.models.retrieve("nope")


def test_anthropic_messages_stream_nonstream_count(gateway: GatewayServer) -> None:
    a = ant(gateway)
    msg = a.messages.create(model="fast", max_tokens=10, messages=MSG)
    assert msg.content[0].type == "text" and msg.content[0].text == TEXT
    with a.messages.stream(model="fast", max_tokens=10, messages=MSG) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == TEXT
    assert final.usage.input_tokens == 7 and final.usage.output_tokens == 8
    u = gateway.gateway.last_usage
    assert u is not None and (u.input_tokens, u.output_tokens, u.cache_read_tokens) == (7, 8, 2)
    assert a.messages.count_tokens(model="fast", messages=MSG).input_tokens == 7
    assert any(mdl.id == "fast" for mdl in a.models.list())


@pytest.mark.parametrize("model", ["fb-refused", "fb-429", "fb-500", "fb-529", "fb-stall", "fb-stallbody",
                                   "fb-errfirst"])
def test_fallback_before_first_byte_client_sees_one_answer(gateway: GatewayServer, mocks: Mocks,
                                                           model: str) -> None:
    before = len(mocks.good2.log)
    chunks = list(oai(gateway).chat.completions.create(model=model, messages=MSG, stream=True))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == TEXT  # exactly one clean answer, nothing of the failed attempt
    assert all(ch.model == "rescued" for ch in chunks)
    assert len(mocks.good2.log) == before + 1
    assert json.loads(mocks.good2.log[-1].body)["model"] == "rescued"


def test_anthropic_fallback_nonstream(gateway: GatewayServer) -> None:
    msg = ant(gateway).messages.create(model="fb-529", max_tokens=5, messages=MSG)
    assert msg.model == "rescued"


def test_retry_after_honoured_then_upstream_error_relayed(gateway: GatewayServer, mocks: Mocks) -> None:
    before = len(mocks.m429.log)
    with pytest.raises(openai.RateLimitError) as exc:
        oai(gateway).chat.completions.create(model="all-429", messages=MSG)
    assert len(mocks.m429.log) == before + 3  # max_attempts, all on the only target
    assert "mock status 429" in str(exc.value)
    with pytest.raises(anthropic.RateLimitError):
        ant(gateway).messages.create(model="all-429", max_tokens=5, messages=MSG)


def test_all_down_is_protocol_shaped(gateway: GatewayServer) -> None:
    t = time.monotonic()
    with pytest.raises(openai.APIStatusError) as exc:
        oai(gateway).chat.completions.create(model="all-down", messages=MSG)
    assert exc.value.status_code in (503, 504)
    assert time.monotonic() - t < 5
    with pytest.raises(anthropic.APIStatusError) as aexc:
        ant(gateway).messages.create(model="all-down", max_tokens=5, messages=MSG)
    assert aexc.value.status_code in (503, 504)
    body = aexc.value.body
    assert isinstance(body, dict) and body["type"] == "error"


def test_mid_stream_reset_raises_in_openai_sdk(gateway: GatewayServer) -> None:
    stream = oai(gateway).chat.completions.create(model="fast", messages=MSG, stream=True,
                                                  extra_headers={"x-mock-fault": "reset_after=3"})
    got: list[str] = []
    with pytest.raises(openai.APIError) as exc:
        for ch in stream:
            got.append(ch.choices[0].delta.content or "")
    assert "upstream stream failed: upstream_reset" in str(exc.value)
    assert len(got) == 3


def test_mid_stream_reset_raises_in_anthropic_sdk(gateway: GatewayServer) -> None:
    stream = ant(gateway).messages.stream(model="fast", max_tokens=5, messages=MSG,
                                          extra_headers={"x-mock-fault": "reset_after=5"})
    with pytest.raises(anthropic.APIError) as exc, stream as s:
        for _ in s.text_stream:
            pass
    assert "upstream_reset" in str(exc.value)


def test_idle_timeout_mid_stream_raises(gateway: GatewayServer) -> None:
    t = time.monotonic()
    with pytest.raises(openai.APIError) as exc:
        for _ in oai(gateway).chat.completions.create(model="fast", messages=MSG, stream=True,
                                                      extra_headers={"x-mock-fault": "stall_after=2"}):
            pass
    assert "idle_timeout" in str(exc.value)
    assert 0.5 < time.monotonic() - t < 3


def test_client_keys_required(mocks: Mocks) -> None:
    from harness import settings_for

    inf = {"path_prefix": "/llm", "client_keys_env": "GW_KEYS",
           "providers": [{"name": "m", "kind": "mock", "base_url": mocks.good.url}],
           "models": [{"name": "fast", "targets": [{"provider": "m", "model": "mock-1"}]}]}
    gw = GatewayServer(settings_for(inf), {"GW_KEYS": "k-one, k-two"}).start()
    try:
        with pytest.raises(openai.AuthenticationError):
            oai(gw).chat.completions.create(model="fast", messages=MSG)
        ok = openai.OpenAI(base_url=gw.base + "/llm/v1", api_key="k-two", max_retries=0)
        assert ok.chat.completions.create(model="fast", messages=MSG).choices[0].message.content == TEXT
        a = anthropic.Anthropic(base_url=gw.base + "/llm", api_key="k-one", max_retries=0)
        assert a.messages.create(model="fast", max_tokens=5, messages=MSG).model == "mock-1"
        before = len(mocks.good.log)
        with pytest.raises(anthropic.AuthenticationError):
            ant(gw).messages.create(model="fast", max_tokens=5, messages=MSG)
        assert len(mocks.good.log) == before  # never reached upstream
    finally:
        gw.stop()


def test_mock_provider_is_never_started_by_the_gateway(mocks: Mocks) -> None:
    from harness import settings_for

    # Without a base_url there is nothing to call: the gateway refuses to start, naming the way to run one.
    inf = {"listen_hosts": ["inference.local"], "path_prefix": "/llm",
           "providers": [{"name": "demo", "kind": "mock"}],
           "models": [{"name": "demo", "targets": [{"provider": "demo", "model": "mock-1"}]}]}
    with pytest.raises(ValueError, match=r"needs a base_url.*sluicegate\.dev\.mock_provider"):
        GatewayServer(settings_for(inf))
    inf["providers"] = [{"name": "demo", "kind": "mock", "base_url": mocks.good.url}]
    gw = GatewayServer(settings_for(inf)).start()
    try:
        text = "".join(ch.choices[0].delta.content or "" for ch in oai(gw).chat.completions.create(
            model="demo", messages=MSG, stream=True) if ch.choices)
        assert text == TEXT
        # Host-based matching: no prefix needed.
        c = openai.OpenAI(base_url=gw.base + "/v1", api_key="x", max_retries=0,
                          default_headers={"Host": "inference.local"})
        assert c.chat.completions.create(model="demo", messages=MSG).model == "mock-1"
    finally:
        gw.stop()
