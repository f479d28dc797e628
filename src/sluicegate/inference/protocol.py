"""Client protocols: which (method, path) is which API, and error shapes in each protocol's own format.

Pure and sans-IO. Owns the path table, path canonicalisation, and the byte builders for JSON error bodies
and mid-stream SSE error events. Must not know about providers, routing or sockets.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass


class Family(enum.Enum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"


class Api(enum.Enum):
    CHAT = "openai_chat_completions"
    COMPLETIONS = "openai_completions"
    RESPONSES = "openai_responses"
    EMBEDDINGS = "openai_embeddings"
    MODELS = "model_list"
    MODEL = "model_get"
    MESSAGES = "anthropic_messages"
    COUNT_TOKENS = "anthropic_count_tokens"

    @property
    def family(self) -> Family:
        return Family.ANTHROPIC if self in (Api.MESSAGES, Api.COUNT_TOKENS) else Family.OPENAI

    @property
    def routed(self) -> bool:
        """True when the request goes upstream (body carries ``model``); model listing is answered locally."""
        return self not in (Api.MODELS, Api.MODEL)


_POST_TABLE: dict[str, Api] = {
    "/v1/chat/completions": Api.CHAT,
    "/v1/completions": Api.COMPLETIONS,
    "/v1/responses": Api.RESPONSES,
    "/v1/embeddings": Api.EMBEDDINGS,
    "/v1/messages": Api.MESSAGES,
    "/v1/messages/count_tokens": Api.COUNT_TOKENS,
}


@dataclass(frozen=True, slots=True)
class Detected:
    api: Api | None  # None: not an API we serve (answer 404 in ``family``'s shape)
    family: Family
    path: str  # canonical path forwarded upstream
    model_id: str = ""  # for GET /v1/models/{id}


def canonical_path(path: str) -> str | None:
    """Collapse repeated slashes and one trailing slash; refuse dot segments and control bytes."""
    if not path.startswith("/") or not path.isprintable() or " " in path:
        return None
    if "//" not in path and "/." not in path and not path.endswith("/"):
        return path  # the common case, already canonical
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        return None
    return "/" + "/".join(parts)


def guess_family(path: str, headers: dict[bytes, bytes]) -> Family:
    if "/messages" in path or b"anthropic-version" in headers or b"x-api-key" in headers:
        return Family.ANTHROPIC
    return Family.OPENAI


def detect(method: str, path: str, raw_path: bytes | None, headers: dict[bytes, bytes]) -> Detected:
    canon = canonical_path(path)
    family = guess_family(path, headers)
    if canon is None or (raw_path is not None and b"%2f" in raw_path.lower()):
        return Detected(None, family, path)
    if method == "POST":
        api = _POST_TABLE.get(canon)
        if api is not None:
            return Detected(api, api.family, canon)
    elif method in ("GET", "HEAD"):
        if canon == "/v1/models":
            return Detected(Api.MODELS, family, canon)
        if canon.startswith("/v1/models/"):
            return Detected(Api.MODEL, family, canon, canon[len("/v1/models/"):])
    return Detected(None, family, canon)


# ---- error shapes -------------------------------------------------------------------------------------

_OPENAI_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
    429: "rate_limit_error", 502: "api_error", 503: "service_unavailable", 504: "timeout",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 405: "invalid_request_error", 413: "request_too_large",
    429: "rate_limit_error", 502: "api_error", 503: "overloaded_error", 504: "timeout_error",
    529: "overloaded_error",
}


def _dumps(obj: object) -> bytes:
    # ensure_ascii: no raw newlines or non-ASCII can reach the wire, so a message cannot forge SSE lines.
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def error_body(family: Family, status: int, message: str, code: str | None = None) -> bytes:
    """A JSON error body as the client's own SDK expects it."""
    if family is Family.ANTHROPIC:
        return _dumps({"type": "error", "error": {"type": _ANTHROPIC_TYPES.get(status, "api_error"),
                                                  "message": message}})
    return _dumps({"error": {"message": message, "type": _OPENAI_TYPES.get(status, "api_error"),
                             "param": None, "code": code}})


def stream_error_event(api: Api | None, message: str, code: str = "proxy_stream_error") -> bytes:
    """One complete SSE error event (the caller ends the previous event first)."""
    if api is not None and api.family is Family.ANTHROPIC:
        body = _dumps({"type": "error", "error": {"type": "api_error", "message": message}})
        return b"event: error\ndata: " + body + b"\n\n"
    err = {"message": message, "type": "proxy_stream_error", "param": None, "code": code}
    if api is Api.RESPONSES:
        body = _dumps({"type": "error", "code": code, "message": message, "param": None, "error": err})
        return b"event: error\ndata: " + body + b"\n\n"
    return b"data: " + _dumps({"error": err}) + b"\n\n"


def models_body(names: list[str], created: int) -> bytes:
    """A model list both SDKs parse: OpenAI ``object: list`` plus Anthropic's paging fields."""
    data = [{"id": n, "object": "model", "created": created, "owned_by": "sluicegate", "type": "model",
             "display_name": n, "created_at": "1970-01-01T00:00:00Z"} for n in names]
    return _dumps({"object": "list", "data": data, "has_more": False,
                   "first_id": names[0] if names else None, "last_id": names[-1] if names else None})


def model_body(name: str, created: int) -> bytes:
    return _dumps({"id": name, "object": "model", "created": created, "owned_by": "sluicegate",
                   "type": "model", "display_name": name, "created_at": "1970-01-01T00:00:00Z"})
