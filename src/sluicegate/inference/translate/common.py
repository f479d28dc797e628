"""Shared pieces of the translators: the typed refusal, the per-request context, and small mappings.

Sans-IO and pure. ``TranslateError`` names the client's parameter that cannot be carried to the target
protocol; the gateway answers it as a 400 in the client's own error shape. ``Ctx`` carries what one
translation needs from the model's config (``default_max_tokens``, ``drop_params``) and collects what was
dropped on request (reported in ``x-sluicegate-dropped``). Must not know about sockets or SSE framing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sluicegate.inference.protocol import Family, error_body


class TranslateError(ValueError):
    """A client parameter with no equivalent on the target protocol (or an invalid value for it)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(slots=True)
class Ctx:
    target_kind: str  # the provider's kind: "openai", "openai-compatible", "anthropic", "mock"
    default_max_tokens: int = 4096
    drop_params: frozenset[str] = frozenset()
    dropped: set[str] = field(default_factory=set)
    stream: bool = False
    include_usage: bool = False  # the client asked for a usage chunk (chat stream_options.include_usage)
    max_buffer_bytes: int = 1024 * 1024  # bound on what a stream stage may hold (tap_max_event_bytes)

    def refuse(self, param: str, why: str) -> None:
        """Drop ``param`` when the model's ``drop_params`` lists it; otherwise refuse the request."""
        if param in self.drop_params or param.split(".", 1)[0] in self.drop_params:
            self.dropped.add(param)
            return
        raise TranslateError(param, f"{param}: {why} (list it in drop_params on the model to drop it)")


def present(body: dict[str, Any], key: str) -> bool:
    return body.get(key) is not None


def check_known(body: dict[str, Any], known: frozenset[str], ctx: Ctx, target: str) -> None:
    """Every top-level parameter must be one this direction maps; others are refused or dropped."""
    for key, value in body.items():
        if key not in known and value is not None:
            ctx.refuse(key, f"has no equivalent in the {target} API")


def want_dict(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TranslateError(param, f"{param}: must be an object")
    return value


def want_list(value: Any, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise TranslateError(param, f"{param}: must be an array")
    return value


def parse_arguments(text: Any, param: str) -> Any:
    """Tool-call arguments (a JSON string in OpenAI protocols) as the object Anthropic's ``input`` wants."""
    if isinstance(text, dict):
        return text
    if not isinstance(text, str):
        raise TranslateError(param, f"{param}: must be a JSON string")
    if not text.strip():
        return {}
    try:
        obj = json.loads(text)
    except ValueError:
        raise TranslateError(param, f"{param}: is not valid JSON") from None
    if not isinstance(obj, dict):
        raise TranslateError(param, f"{param}: must encode a JSON object")
    return obj


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def data_url(media_type: str, data: str) -> str:
    return f"data:{media_type};base64,{data}"


def split_data_url(url: str) -> tuple[str, str] | None:
    """``data:image/png;base64,AAAA`` -> ("image/png", "AAAA"); None for other URLs."""
    if not url.startswith("data:"):
        return None
    head, sep, payload = url[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        return None
    return head[: -len(";base64")] or "application/octet-stream", payload


# finish reasons: Anthropic stop_reason -> OpenAI finish_reason, and back
STOP_TO_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
                  "pause_turn": "stop", "refusal": "content_filter",
                  "model_context_window_exceeded": "length"}
FINISH_TO_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                  "function_call": "tool_use", "content_filter": "refusal"}


def anthropic_usage_to_chat(u: dict[str, Any]) -> dict[str, Any]:
    """Anthropic input excludes cache reads/writes; OpenAI prompt_tokens includes them."""
    inp = int(u.get("input_tokens") or 0)
    read = int(u.get("cache_read_input_tokens") or 0)
    write = int(u.get("cache_creation_input_tokens") or 0)
    out = int(u.get("output_tokens") or 0)
    prompt = inp + read + write
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out,
                             "prompt_tokens_details": {"cached_tokens": read}}
    if write:
        usage["cache_creation_input_tokens"] = write
    return usage


def chat_usage_to_anthropic(u: dict[str, Any]) -> dict[str, Any]:
    details = u.get("prompt_tokens_details") or {}
    read = int(details.get("cached_tokens") or 0)
    write = int(u.get("cache_creation_input_tokens") or 0)
    prompt = int(u.get("prompt_tokens") or 0)
    out: dict[str, Any] = {"input_tokens": max(0, prompt - read - write),
                           "output_tokens": int(u.get("completion_tokens") or 0)}
    if read:
        out["cache_read_input_tokens"] = read
    if write:
        out["cache_creation_input_tokens"] = write
    return out


def chat_usage_to_responses(u: dict[str, Any]) -> dict[str, Any]:
    details = u.get("prompt_tokens_details") or {}
    cdetails = u.get("completion_tokens_details") or {}
    inp = int(u.get("prompt_tokens") or 0)
    out = int(u.get("completion_tokens") or 0)
    return {"input_tokens": inp, "input_tokens_details": {"cached_tokens": int(details.get("cached_tokens") or 0)},
            "output_tokens": out,
            "output_tokens_details": {"reasoning_tokens": int(cdetails.get("reasoning_tokens") or 0)},
            "total_tokens": int(u.get("total_tokens") or inp + out)}


def error_message(body: bytes) -> tuple[str, str | None]:
    """(message, type) out of an upstream error body in either family's shape (or its raw text)."""
    try:
        obj = json.loads(body)
    except ValueError:
        return (body[:500].decode("utf-8", "replace") or "upstream error"), None
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or "upstream error"), err.get("type") or err.get("code")
    if isinstance(err, str):
        return err, None
    return "upstream error", None


def chat_stream_error(obj: dict[str, Any]) -> str:
    """The message of an error a chat provider sends as a stream chunk: ``{"error": {"message": ...}}`` or
    ``{"error": "..."}`` (the caller tests ``"error" in obj and not obj.get("choices")``, per chunk, inline)."""
    err = obj.get("error")
    msg = err.get("message") if isinstance(err, dict) else err
    return str(msg or "upstream error")


def ask_stream_usage(body: dict[str, Any], out: dict[str, Any], ctx: Ctx) -> None:
    """A streamed request becomes a streamed chat request that asks for the usage chunk (the client's
    protocol reports usage at the end of every stream)."""
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
        ctx.stream = True
        ctx.include_usage = True


def translate_error(status: int, body: bytes, family: Family) -> tuple[int, bytes]:
    """An upstream error answer re-shaped for the client's family, with a status its SDK understands."""
    message, etype = error_message(body)
    if family is Family.OPENAI and status == 529:
        status = 503  # Anthropic's "overloaded" has no OpenAI status of its own
    return status, error_body(family, status, message, etype if isinstance(etype, str) else None)
