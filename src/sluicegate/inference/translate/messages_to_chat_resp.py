"""Response, Anthropic Messages -> OpenAI chat completions (direction 1; first leg of Anthropic ->
Responses).

``MessagesToChat`` is a stream stage: ``message_start`` opens the assistant delta, text deltas become
``delta.content``, ``tool_use`` blocks become ``delta.tool_calls[i]`` (index counted over tool blocks, id and
name on the first delta, ``input_json_delta.partial_json`` as ``function.arguments``), thinking becomes
``delta.reasoning_content``, ``message_delta`` gives the finish reason and usage (a usage chunk when the
client asked for ``stream_options.include_usage``), ``message_stop`` ends with ``[DONE]``. ``ping`` and unknown
events are skipped (the chat protocol has neither). ``whole`` maps a non-streamed message. Must not know
about SSE framing or sockets.
"""

from __future__ import annotations

import time
from typing import Any

from sluicegate.inference.translate.common import STOP_TO_FINISH, anthropic_usage_to_chat, dumps
from sluicegate.inference.translate.stream import DONE, PING, Event, dumps_ascii


def _chat_id(msg_id: Any) -> str:
    return f"chatcmpl-{msg_id}" if isinstance(msg_id, str) and msg_id else "chatcmpl-sluicegate"


class MessagesToChat:
    __slots__ = (
        "_args_tpl",
        "_base",
        "_blocks",
        "_finish",
        "_started",
        "_tools",
        "_tpl",
        "_usage",
        "closed",
        "dropped",
        "include_usage",
    )

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.dropped: set[str] = set()
        self.closed = False
        self._base: dict[str, Any] = {"id": "chatcmpl-sluicegate", "object": "chat.completion.chunk",
                                      "created": int(time.time()), "model": ""}
        self._blocks: dict[int, int] = {}  # Anthropic block index -> tool call index
        self._tools = 0
        self._usage: dict[str, Any] = {}
        self._finish: str | None = None
        self._started = False
        self._tpl = ("", "")  # a text chunk's frame around the escaped text (built when first needed)
        self._args_tpl: dict[int, tuple[str, str]] = {}  # per tool call: its arguments chunk's frame, likewise

    def passes_text(self) -> bool:
        return self._started and not self.closed

    def text_frame(self, esc: str) -> str | None:
        if not self._started or self.closed:
            return None
        head, tail = self._tpl
        if not head:  # built at the first text delta (not on the way to the first byte)
            # Exactly what _chunk({"content": text}) encodes to, split at the text.
            head, _, tail = ("data: " + dumps_ascii(self._chunk({"content": "\x00"})) + "\n\n").partition(
                '"content":"\\u0000"')
            head, tail = self._tpl = (head + '"content":"', '"' + tail)
        return head + esc + tail

    def passes_args(self, index: int) -> int | None:
        if not self._started or self.closed:
            return None
        return self._blocks.get(index)

    def args_frame(self, index: int, esc: str) -> str | None:
        idx = self.passes_args(index)
        if idx is None:
            return None  # (the general path sends nothing for a block that is not a tool call)
        tpl = self._args_tpl.get(idx)
        if tpl is None:
            head, _, tail = ("data: " + dumps_ascii(self._chunk({"tool_calls": [
                {"index": idx, "function": {"arguments": "\x00"}}]})) + "\n\n").partition('"\\u0000"')
            tpl = self._args_tpl[idx] = (head + '"', '"' + tail)
        return tpl[0] + esc + tpl[1]

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        c = dict(self._base)
        c["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        if self.include_usage:
            c["usage"] = None
        return c

    def event(self, name: str, obj: Any, out: list[Event]) -> None:
        if self.closed:
            return
        if obj is PING or (isinstance(obj, dict) and obj.get("type") == "ping"):
            out.append(("", PING))  # chat has no ping event: an SSE comment keeps the connection warm
            return
        if not isinstance(obj, dict):
            return
        typ = obj.get("type") or name
        if typ == "content_block_delta":
            d = obj.get("delta") or {}
            dt = d.get("type")
            if dt == "text_delta":
                out.append(("", self._chunk({"content": d.get("text", "")})))
            elif dt == "input_json_delta":
                idx = self._blocks.get(obj.get("index", -1))
                if idx is not None:
                    out.append(("", self._chunk({"tool_calls": [
                        {"index": idx, "function": {"arguments": d.get("partial_json", "")}}]})))
            elif dt == "thinking_delta":
                out.append(("", self._chunk({"reasoning_content": d.get("thinking", "")})))
            # signature_delta, citations_delta: no chat equivalent; the text itself is already carried
        elif typ == "content_block_start":
            block = obj.get("content_block") or {}
            bt = block.get("type")
            if bt == "tool_use":
                idx = self._blocks[obj.get("index", -1)] = self._tools
                self._tools += 1
                out.append(("", self._chunk({"tool_calls": [
                    {"index": idx, "id": block.get("id", ""), "type": "function",
                     "function": {"name": block.get("name", ""), "arguments": ""}}]})))
                if block.get("input"):  # a start that already carries input (no deltas follow)
                    out.append(("", self._chunk({"tool_calls": [
                        {"index": idx, "function": {"arguments": dumps(block["input"])}}]})))
            elif bt == "text" and block.get("text"):
                out.append(("", self._chunk({"content": block["text"]})))
            elif bt == "redacted_thinking":
                self.dropped.add("redacted_thinking")
            elif bt not in ("text", "thinking", None):
                self.dropped.add(str(bt))
        elif typ == "message_start":
            msg = obj.get("message") or {}
            self._base["id"] = _chat_id(msg.get("id"))
            self._base["model"] = msg.get("model", "")
            self._usage.update(msg.get("usage") or {})
            self._started = True
            self._tpl, self._args_tpl = ("", ""), {}  # (the id and model are the frames')
            out.append(("", self._chunk({"role": "assistant", "content": ""})))
        elif typ == "message_delta":
            d = obj.get("delta") or {}
            if d.get("stop_reason"):
                self._finish = STOP_TO_FINISH.get(d["stop_reason"], "stop")
            self._usage.update({k: v for k, v in (obj.get("usage") or {}).items() if v is not None})
        elif typ == "message_stop":
            self._close(out)
        elif typ == "error":
            err = obj.get("error") or {}
            self.fail(str(err.get("message") or "upstream error"), str(err.get("type") or "api_error"), out)
        # content_block_stop and unknown event types: nothing to say in chat completions

    def _close(self, out: list[Event]) -> None:
        out.append(("", self._chunk({}, self._finish or "stop")))
        if self.include_usage:
            c = dict(self._base)
            c["choices"] = []
            c["usage"] = anthropic_usage_to_chat(self._usage)
            out.append(("", c))
        out.append(("", DONE))
        self.closed = True

    def end(self, out: list[Event]) -> None:
        if self.closed:
            return
        if self._finish is not None:  # message_delta seen, message_stop lost: the answer is complete
            self._close(out)
        else:
            self.fail("upstream stream ended before the message was complete", "upstream_incomplete", out)

    def fail(self, message: str, code: str, out: list[Event]) -> None:
        if self.closed:
            return
        out.append(("", {"error": {"message": message, "type": "proxy_stream_error", "param": None,
                                   "code": code}}))
        out.append(("", DONE))
        self.closed = True


def whole(msg: dict[str, Any], dropped: set[str]) -> dict[str, Any]:
    """A non-streamed Anthropic message as a chat.completion."""
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in msg.get("content") or []:
        bt = block.get("type")
        if bt == "text":
            text.append(block.get("text", ""))
        elif bt == "tool_use":
            calls.append({"id": block.get("id", ""), "type": "function",
                          "function": {"name": block.get("name", ""), "arguments": dumps(block.get("input", {}))}})
        elif bt == "thinking":
            reasoning.append(block.get("thinking", ""))
        else:
            dropped.add(str(bt))
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None,
                               "refusal": None}
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    return {"id": _chat_id(msg.get("id")), "object": "chat.completion", "created": int(time.time()),
            "model": msg.get("model", ""),
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": STOP_TO_FINISH.get(msg.get("stop_reason") or "end_turn", "stop")}],
            "usage": anthropic_usage_to_chat(msg.get("usage") or {})}
