"""The mock provider speaks each protocol as the official SDKs' high-level stream helpers expect (issue #18 §5).

``chat.completions.stream``, ``responses.stream`` and ``messages.stream`` accumulate a final object
from the events; each must equal the non-streamed answer (text and token counts), directly against
the mock and through the gateway (byte-transparent relay), over real sockets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from sluicegate.config.inference import MockSettings
from sluicegate.config.model import Settings
from sluicegate.dev.mock_provider import MockProvider
from tests.integration.teams.test_teams_gateway import Served

MSG: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def mock() -> Iterator[MockProvider]:
    m = MockProvider(MockSettings(first_delay_ms=1, between_delay_ms=1, chunks=6)).start_in_thread()
    yield m
    m.stop_thread()


@pytest.fixture(scope="module", params=["direct", "gateway"])
def base(request: pytest.FixtureRequest, mock: MockProvider, tmp_path_factory: pytest.TempPathFactory) \
        -> Iterator[str]:
    if request.param == "direct":
        yield mock.url.removesuffix("/v1")
        return
    settings = Settings.model_validate({"inference": {
        "path_prefix": "/llm", "providers": [{"name": "m", "kind": "mock", "base_url": mock.url}],
        "models": [{"name": "mock-1", "targets": [{"provider": "m", "model": "mock-1"}]}],
        "state": {"data_dir": str(tmp_path_factory.mktemp("fidelity"))}}})
    with Served(settings) as srv:
        yield f"http://127.0.0.1:{srv.port}/llm"


def test_chat_completions_stream_helper(base: str, mock: MockProvider) -> None:
    c = openai.OpenAI(base_url=base + "/v1", api_key="k", max_retries=0)
    whole = c.chat.completions.create(model="mock-1", messages=MSG)
    with c.chat.completions.stream(model="mock-1", messages=MSG, stream_options={"include_usage": True}) as s:
        kinds = {ev.type for ev in s}
        final = s.get_final_completion()
    assert {"chunk", "content.delta", "content.done"} <= kinds
    assert final.choices[0].message.content == whole.choices[0].message.content == mock.settings.text
    assert final.choices[0].finish_reason == "stop"
    assert final.usage is not None and whole.usage is not None
    assert final.usage.model_dump() == whole.usage.model_dump()
    assert whole.usage.completion_tokens == 6 and whole.usage.total_tokens == whole.usage.prompt_tokens + 6


def test_responses_stream_helper(base: str, mock: MockProvider) -> None:
    c = openai.OpenAI(base_url=base + "/v1", api_key="k", max_retries=0)
    whole = c.responses.create(model="mock-1", input="hi")
    with c.responses.stream(model="mock-1", input="hi") as s:
        events = [ev.type for ev in s]
        final = s.get_final_response()
    order = ["response.created", "response.in_progress", "response.output_item.added",
             "response.content_part.added", "response.output_text.delta", "response.output_text.done",
             "response.content_part.done", "response.output_item.done", "response.completed"]
    assert [e for e in dict.fromkeys(events)] == order
    assert final.output_text == whole.output_text == mock.settings.text
    assert final.usage is not None and whole.usage is not None
    assert final.usage.model_dump() == whole.usage.model_dump()
    assert whole.usage.output_tokens == 6


def test_messages_stream_helper(base: str, mock: MockProvider) -> None:
    c = anthropic.Anthropic(base_url=base, api_key="k", max_retries=0)
    whole = c.messages.create(model="mock-1", max_tokens=100, messages=MSG)
    with c.messages.stream(model="mock-1", max_tokens=100, messages=MSG) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == final.content[0].text == whole.content[0].text == mock.settings.text  # type: ignore[union-attr]
    assert final.stop_reason == whole.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.cache_read_input_tokens) == (
        whole.usage.input_tokens, whole.usage.output_tokens, whole.usage.cache_read_input_tokens)
    assert whole.usage.output_tokens == 6
