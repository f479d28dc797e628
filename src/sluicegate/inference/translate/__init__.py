"""Protocol translation between the client's API and the target provider's: which way, and the translators.

Sans-IO. ``speaks(kind, apis)`` is the set of APIs a provider answers; ``choose(client, speaks)`` picks the
upstream API (the client's own when the provider has it — no translation preferred — else chat completions
or Messages); ``Route`` bundles, for one (client API, upstream API) pair, the request translator
(dict -> dict, raising ``TranslateError``), a streaming translator factory (``feed(bytes) -> bytes``,
``finish()``, ``fail()``) and the non-streamed response translator. One module per direction and stage:
``chat_to_messages`` / ``messages_to_chat_resp`` (OpenAI chat client -> Anthropic), ``messages_to_chat`` /
``chat_to_messages_resp`` (Anthropic client -> chat), ``responses_to_chat`` / ``chat_to_responses_resp``
(Responses client -> chat, and -> Anthropic by composing with the chat <-> Messages stages). Must not know
about sockets, routing, retries or the gateway's relay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sluicegate.inference.protocol import Api
from sluicegate.inference.translate import (
    chat_to_messages,
    chat_to_messages_resp,
    chat_to_responses_resp,
    messages_to_chat,
    messages_to_chat_resp,
    responses_to_chat,
)
from sluicegate.inference.translate.common import Ctx, TranslateError, translate_error
from sluicegate.inference.translate.stream import Stage, StreamOverflow, StreamTranslator

__all__ = ["API_NAMES", "Ctx", "Route", "StreamOverflow", "StreamTranslator", "TranslateError", "choose",
           "route_for", "speaks", "translate_error"]

API_NAMES: dict[str, Api] = {"chat": Api.CHAT, "responses": Api.RESPONSES, "completions": Api.COMPLETIONS,
                             "embeddings": Api.EMBEDDINGS}
UPSTREAM_PATH: dict[Api, str] = {Api.CHAT: "/v1/chat/completions", Api.MESSAGES: "/v1/messages",
                                 Api.RESPONSES: "/v1/responses"}
_ALL = frozenset(Api) - {Api.MODELS, Api.MODEL}


def speaks(kind: str, apis: Iterable[str] | None = None) -> frozenset[Api]:
    """The APIs a provider of ``kind`` answers (``apis`` extends ``openai-compatible`` beyond chat)."""
    if kind == "mock":
        return _ALL
    if kind == "anthropic":
        return frozenset({Api.MESSAGES, Api.COUNT_TOKENS})
    if kind == "openai":
        return frozenset({Api.CHAT, Api.RESPONSES, Api.COMPLETIONS, Api.EMBEDDINGS})
    return frozenset({Api.CHAT} | {API_NAMES[a] for a in (apis or ()) if a in API_NAMES})


def choose(client: Api, available: frozenset[Api]) -> Api | None:
    """The upstream API for a client API: its own when available, else the one translation reaches."""
    if client in available:
        return client
    order = {Api.CHAT: (Api.MESSAGES,), Api.MESSAGES: (Api.CHAT,),
             Api.RESPONSES: (Api.CHAT, Api.MESSAGES)}.get(client, ())
    for api in order:
        if api in available:
            return api
    return None


def _wh_messages_to_chat(obj: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    return messages_to_chat_resp.whole(obj, ctx.dropped)


def _wh_chat_to_messages(obj: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    return chat_to_messages_resp.whole(obj, ctx.dropped)


def _wh_chat_to_responses(obj: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    return chat_to_responses_resp.whole(obj, ctx.dropped)


def _wh_messages_to_responses(obj: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    return chat_to_responses_resp.whole(messages_to_chat_resp.whole(obj, ctx.dropped), ctx.dropped)


def _rq_responses_to_messages(body: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    return chat_to_messages.translate(responses_to_chat.translate(body, ctx), ctx)


@dataclass(frozen=True, slots=True)
class Route:
    client: Api
    upstream: Api
    request: Callable[[dict[str, Any], Ctx], dict[str, Any]]
    whole: Callable[[dict[str, Any], Ctx], dict[str, Any]]
    stages: Callable[[Ctx], list[Stage]]

    @property
    def path(self) -> str:
        return UPSTREAM_PATH[self.upstream]

    def stream(self, ctx: Ctx, max_event_bytes: int) -> StreamTranslator:
        ctx.max_buffer_bytes = max_event_bytes
        return StreamTranslator(self.stages(ctx), upstream_chat=self.upstream is Api.CHAT,
                                client_chat=self.client is Api.CHAT, max_event_bytes=max_event_bytes)


_ROUTES: dict[tuple[Api, Api], Route] = {
    (Api.CHAT, Api.MESSAGES): Route(Api.CHAT, Api.MESSAGES, chat_to_messages.translate, _wh_messages_to_chat,
                                    lambda ctx: [messages_to_chat_resp.MessagesToChat(ctx.include_usage)]),
    (Api.MESSAGES, Api.CHAT): Route(Api.MESSAGES, Api.CHAT, messages_to_chat.translate, _wh_chat_to_messages,
                                    lambda ctx: [chat_to_messages_resp.ChatToMessages(
                                        max_pending_bytes=ctx.max_buffer_bytes)]),
    (Api.RESPONSES, Api.CHAT): Route(Api.RESPONSES, Api.CHAT, responses_to_chat.translate, _wh_chat_to_responses,
                                     lambda ctx: [chat_to_responses_resp.ChatToResponses()]),
    (Api.RESPONSES, Api.MESSAGES): Route(
        Api.RESPONSES, Api.MESSAGES, _rq_responses_to_messages, _wh_messages_to_responses,
        lambda ctx: [messages_to_chat_resp.MessagesToChat(True), chat_to_responses_resp.ChatToResponses()]),
}


def route_for(client: Api, upstream: Api) -> Route | None:
    """The translation route, or None when ``client`` and ``upstream`` are the same API (a byte relay)."""
    if client is upstream:
        return None
    return _ROUTES[(client, upstream)]
