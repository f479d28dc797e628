"""The mock provider's tool-call answers: when a request carries ``tools``, the mock calls the first tool
twice (parallel calls), streaming the arguments in pieces as each protocol does it (or whole, unstreamed).

Anthropic Messages: ``tool_use`` blocks with ``input_json_delta.partial_json`` pieces and
``stop_reason = "tool_use"``; OpenAI chat completions: ``delta.tool_calls[i]`` (id and name on the first
delta, argument pieces after) and ``finish_reason = "tool_calls"``; Responses: ``function_call`` output
items with ``response.function_call_arguments.delta`` / ``.done``. Pure payload builders; must not know
about sockets or faults (``mock.py`` owns those).
"""

from __future__ import annotations

import json
from typing import Any

ARGS = ['{"location": ', '"Paris", ', '"unit": "c"}']  # one call's arguments, in the pieces streamed
_J = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _name(req: dict[str, Any]) -> str | None:
    tools = req.get("tools")
    if not isinstance(tools, list) or not tools or not isinstance(tools[0], dict):
        return None
    t = tools[0]
    fn = t.get("function")
    name = fn.get("name") if isinstance(fn, dict) else t.get("name")
    return name if isinstance(name, str) else None


def _ev(name: str, obj: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _J(obj).encode() + b"\n\n"


def events(path: str, model: str, req: dict[str, Any]) -> list[bytes] | None:
    """The streamed tool-call answer for ``path``, or None when the request has no (function) tools."""
    name = _name(req)
    if name is None:
        return None
    if path == "/v1/messages":
        evs = [_ev("message_start", {"type": "message_start", "message": {
            "id": "msg_mock_tools", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 7, "output_tokens": 1}}})]
        for i in range(2):
            evs.append(_ev("content_block_start", {"type": "content_block_start", "index": i, "content_block": {
                "type": "tool_use", "id": f"toolu_mock_{i}", "name": name, "input": {}}}))
            evs += [_ev("content_block_delta", {"type": "content_block_delta", "index": i,
                                                "delta": {"type": "input_json_delta", "partial_json": p}})
                    for p in ARGS]
            evs.append(_ev("content_block_stop", {"type": "content_block_stop", "index": i}))
        evs += [_ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use",
                                                                       "stop_sequence": None},
                                      "usage": {"output_tokens": 6}}),
                _ev("message_stop", {"type": "message_stop"})]
        return evs
    if path == "/v1/chat/completions":
        usage = isinstance(req.get("stream_options"), dict) and req["stream_options"].get("include_usage") is True

        def chunk(delta: dict[str, Any] | None, finish: str | None = None, u: Any = None) -> bytes:
            body: dict[str, Any] = {"id": "chatcmpl-mock-tools", "object": "chat.completion.chunk",
                                    "created": 1_700_000_000, "model": model,
                                    "choices": [] if delta is None else [{"index": 0, "delta": delta,
                                                                           "finish_reason": finish}]}
            if usage:
                body["usage"] = u
            return b"data: " + _J(body).encode() + b"\n\n"

        evs = [chunk({"role": "assistant", "content": None})]
        for i in range(2):
            evs.append(chunk({"tool_calls": [{"index": i, "id": f"call_mock_{i}", "type": "function",
                                              "function": {"name": name, "arguments": ""}}]}))
            evs += [chunk({"tool_calls": [{"index": i, "function": {"arguments": p}}]}) for p in ARGS]
        evs.append(chunk({}, "tool_calls"))
        if usage:
            evs.append(chunk(None, None, {"prompt_tokens": 7, "completion_tokens": 6, "total_tokens": 13}))
        evs.append(b"data: [DONE]\n\n")
        return evs
    if path == "/v1/responses":
        seq = iter(range(1_000_000))
        base = {"id": "resp_mock_tools", "object": "response", "created_at": 1_700_000_000, "model": model,
                "status": "in_progress", "output": []}
        evs = [_ev("response.created", {"type": "response.created", "sequence_number": next(seq), "response": base})]
        items = []
        for i in range(2):
            item = {"id": f"fc_mock_{i}", "type": "function_call", "status": "in_progress",
                    "call_id": f"call_mock_{i}", "name": name, "arguments": ""}
            evs.append(_ev("response.output_item.added", {"type": "response.output_item.added",
                                                          "sequence_number": next(seq), "output_index": i,
                                                          "item": item}))
            evs += [_ev("response.function_call_arguments.delta", {
                "type": "response.function_call_arguments.delta", "sequence_number": next(seq),
                "item_id": item["id"], "output_index": i, "delta": p}) for p in ARGS]
            done = dict(item, status="completed", arguments="".join(ARGS))
            evs.append(_ev("response.function_call_arguments.done", {
                "type": "response.function_call_arguments.done", "sequence_number": next(seq),
                "item_id": item["id"], "output_index": i, "name": name, "arguments": done["arguments"]}))
            evs.append(_ev("response.output_item.done", {"type": "response.output_item.done",
                                                         "sequence_number": next(seq), "output_index": i,
                                                         "item": done}))
            items.append(done)
        final = dict(base, status="completed", output=items,
                     usage={"input_tokens": 7, "output_tokens": 6, "total_tokens": 13,
                            "input_tokens_details": {"cached_tokens": 0},
                            "output_tokens_details": {"reasoning_tokens": 0}})
        evs.append(_ev("response.completed", {"type": "response.completed", "sequence_number": next(seq),
                                              "response": final}))
        return evs
    return None


def whole(path: str, model: str, req: dict[str, Any]) -> bytes | None:
    """The non-streamed tool-call answer for ``path``, or None when the request has no (function) tools."""
    name = _name(req)
    if name is None:
        return None
    args = "".join(ARGS)
    if path == "/v1/messages":
        return _J({"id": "msg_mock_tools", "type": "message", "role": "assistant", "model": model,
                   "content": [{"type": "tool_use", "id": f"toolu_mock_{i}", "name": name, "input": json.loads(args)}
                               for i in range(2)],
                   "stop_reason": "tool_use", "stop_sequence": None,
                   "usage": {"input_tokens": 7, "output_tokens": 6}}).encode()
    if path == "/v1/chat/completions":
        calls = [{"id": f"call_mock_{i}", "type": "function", "function": {"name": name, "arguments": args}}
                 for i in range(2)]
        return _J({"id": "chatcmpl-mock-tools", "object": "chat.completion", "created": 1_700_000_000,
                   "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": None,
                                                                          "tool_calls": calls},
                                                "finish_reason": "tool_calls"}],
                   "usage": {"prompt_tokens": 7, "completion_tokens": 6, "total_tokens": 13}}).encode()
    if path == "/v1/responses":
        items = [{"id": f"fc_mock_{i}", "type": "function_call", "status": "completed", "call_id": f"call_mock_{i}",
                  "name": name, "arguments": args} for i in range(2)]
        return _J({"id": "resp_mock_tools", "object": "response", "created_at": 1_700_000_000, "model": model,
                   "status": "completed", "output": items,
                   "usage": {"input_tokens": 7, "output_tokens": 6, "total_tokens": 13,
                             "input_tokens_details": {"cached_tokens": 0},
                             "output_tokens_details": {"reasoning_tokens": 0}}}).encode()
    return None
