"""A whole upstream answer replayed as that protocol's own stream, for a provider that answered a streamed
request with one JSON body (older llama.cpp servers do so for tool calls).

Pure: ``chat_events(completion)`` and ``messages_events(message)`` give the SSE bytes the provider would
have streamed (one delta per content part or tool call), so the normal streaming translator turns them
into the client's stream. Must not know about sockets or the client's protocol.
"""

from __future__ import annotations

import json
from typing import Any

_dumps = json.JSONEncoder(separators=(",", ":")).encode


def _data(obj: Any) -> str:
    return "data: " + _dumps(obj) + "\n\n"


def _named(obj: dict[str, Any]) -> str:
    return "event: " + str(obj["type"]) + "\ndata: " + _dumps(obj) + "\n\n"


def chat_events(comp: dict[str, Any]) -> bytes:
    choice = (comp.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    base: dict[str, Any] = {k: comp[k] for k in ("id", "created", "model") if k in comp}
    base["object"] = "chat.completion.chunk"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return _data({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    parts = [chunk({"role": "assistant", "content": ""})]
    r = msg.get("reasoning_content") or msg.get("reasoning")
    if isinstance(r, str) and r:
        parts.append(chunk({"reasoning_content": r}))
    if isinstance(msg.get("content"), str) and msg["content"]:
        parts.append(chunk({"content": msg["content"]}))
    for i, call in enumerate(msg.get("tool_calls") or []):
        fn = call.get("function") or {}
        parts.append(chunk({"tool_calls": [{"index": i, "id": call.get("id", ""), "type": "function",
                                            "function": {"name": fn.get("name", ""),
                                                         "arguments": fn.get("arguments", "")}}]}))
    parts.append(chunk({}, choice.get("finish_reason") or "stop"))
    if isinstance(comp.get("usage"), dict):
        parts.append(_data({**base, "choices": [], "usage": comp["usage"]}))
    parts.append("data: [DONE]\n\n")
    return "".join(parts).encode()


def messages_events(msg: dict[str, Any]) -> bytes:
    usage = dict(msg.get("usage") or {})
    start = {k: v for k, v in msg.items() if k not in ("content", "stop_reason", "stop_sequence")}
    start.update(content=[], stop_reason=None, stop_sequence=None, usage={**usage, "output_tokens": 0})
    parts = [_named({"type": "message_start", "message": start})]
    for i, block in enumerate(msg.get("content") or []):
        bt = block.get("type")
        if bt == "text":
            parts.append(_named({"type": "content_block_start", "index": i, "content_block": {"type": "text",
                                                                                           "text": ""}}))
            parts.append(_named({"type": "content_block_delta", "index": i,
                                 "delta": {"type": "text_delta", "text": block.get("text", "")}}))
        elif bt == "thinking":
            parts.append(_named({"type": "content_block_start", "index": i,
                                 "content_block": {"type": "thinking", "thinking": "", "signature": ""}}))
            parts.append(_named({"type": "content_block_delta", "index": i,
                                 "delta": {"type": "thinking_delta", "thinking": block.get("thinking", "")}}))
        elif bt == "tool_use":
            parts.append(_named({"type": "content_block_start", "index": i, "content_block": {
                "type": "tool_use", "id": block.get("id", ""), "name": block.get("name", ""), "input": {}}}))
            parts.append(_named({"type": "content_block_delta", "index": i, "delta": {
                "type": "input_json_delta", "partial_json": _dumps(block.get("input", {}))}}))
        else:
            parts.append(_named({"type": "content_block_start", "index": i, "content_block": block}))
        parts.append(_named({"type": "content_block_stop", "index": i}))
    parts.append(_named({"type": "message_delta", "delta": {"stop_reason": msg.get("stop_reason") or "end_turn",
                                                            "stop_sequence": msg.get("stop_sequence")},
                         "usage": {"output_tokens": int(usage.get("output_tokens") or 0)}}))
    parts.append(_named({"type": "message_stop"}))
    return "".join(parts).encode()
