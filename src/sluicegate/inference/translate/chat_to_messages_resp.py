"""Response, OpenAI chat completions -> Anthropic Messages (direction 2).

``ChatToMessages`` is a stream stage producing the exact event sequence the Messages API defines:
``message_start``, then per block ``content_block_start`` / ``content_block_delta`` / ``content_block_stop``
(``delta.reasoning_content`` or ``delta.reasoning`` -> a thinking block, ``delta.content`` -> a text block,
each ``delta.tool_calls[i]`` -> a ``tool_use`` block opened on its id/name, arguments streamed as
``input_json_delta``), then ``message_delta`` (stop reason, usage from the final usage chunk) and
``message_stop``. The end waits for ``[DONE]`` (or upstream EOF after a finish reason) because the usage
chunk follows the finish reason. An ``error`` chunk becomes an ``error`` event.

Parallel calls: Messages blocks are sequential (no delta after a block's stop, one block open at a time), while
a chat provider may open every call first and then interleave their argument deltas by index. The live call's
block streams its deltas. When another call opens: if the live call's arguments are already a complete JSON
value and nothing is held (OpenAI's own order: each call whole, then the next), the live block closes and the
new call becomes live; otherwise (all calls opened first, vLLM-style) the new call is *pending*: its id, name
and argument pieces are held (bounded by ``max_pending_bytes``; over it the stream ends with an error event,
never truncated) and become blocks, each start + one ``input_json_delta`` + stop, once no more deltas can
come, i.e. when the choice finishes (finish reason, ``[DONE]`` or EOF). Text or thinking after the calls closes
them first. A later delta for a closed call is refused with an error event, never misplaced (whitespace only,
which cannot change a complete JSON input, is skipped). ``whole`` maps a
non-streamed completion. Must not know about SSE framing or sockets.
"""

from __future__ import annotations

import json
from typing import Any

from sluicegate.inference.translate.common import FINISH_TO_STOP, chat_stream_error, chat_usage_to_anthropic
from sluicegate.inference.translate.stream import DONE, PING, Event, escape, loads_str


def _msg_id(chat_id: Any) -> str:
    if isinstance(chat_id, str) and chat_id:
        return chat_id if chat_id.startswith("msg_") else f"msg_{chat_id}"
    return "msg_sluicegate"


class ChatToMessages:
    __slots__ = (
        "_block",
        "_finish",
        "_kind",
        "_live",
        "_live_args",
        "_live_size",
        "_max_pending",
        "_next",
        "_pending",
        "_pending_bytes",
        "_started",
        "_text_head",
        "_tool_blocks",
        "_usage",
        "closed",
        "dropped",
        "model",
    )

    def __init__(self, model: str = "", max_pending_bytes: int = 1024 * 1024) -> None:
        self.model = model
        self.closed = False
        self.dropped: set[str] = set()
        self._started = False
        self._block = -1  # index of the open content block (-1: none)
        self._kind = ""  # its type: "text", "thinking", "tool_use"
        self._next = 0  # next block index
        self._tool_blocks: dict[int, int] = {}  # chat tool call index -> Anthropic block index (opened calls)
        self._live = -1  # chat tool call index of the open tool_use block (-1: none)
        self._pending: dict[int, tuple[dict[str, Any], list[str]]] = {}  # calls opened while another is live
        self._pending_bytes = 0
        self._max_pending = max_pending_bytes
        self._live_args: list[str] = []  # the live call's arguments, JSON-escaped pieces (while under the bound)
        self._live_size = 0
        self._usage: dict[str, Any] = {}
        self._finish: str | None = None
        self._text_head = ""  # the open text block's delta frame up to the escaped text

    def passes_text(self) -> bool:
        return False  # always the last stage

    def text_frame(self, esc: str) -> str | None:
        if self._kind != "text" or self.closed:
            return None  # (an open text block implies the message has started)
        if not esc:
            return ""
        return self._text_head + esc + '"}}\n\n'

    def passes_args(self, index: int) -> int | None:
        return None  # always the last stage

    def args_frame(self, index: int, esc: str) -> str | None:
        if index != self._live or self.closed:
            return None  # a new, pending or closed call takes the general path
        idx = self._block
        if not esc:
            return ""
        self._keep_live(esc)
        return ('event: content_block_delta\ndata: {"type":"content_block_delta","index":'
                f'{idx},"delta":{{"type":"input_json_delta","partial_json":"{esc}"}}}}\n\n')

    def _keep_live(self, esc: str) -> None:
        size = self._live_size = self._live_size + len(esc)
        if size <= self._max_pending:
            self._live_args.append(esc)

    def _live_complete(self) -> bool:
        """The live call's arguments are a whole JSON value: a later piece could only make them invalid."""
        if self._live_size > self._max_pending or not self._live_args:
            return False
        try:
            json.loads(loads_str(self._live_args))
        except ValueError:
            return False
        return True

    def _start(self, chunk: dict[str, Any], out: list[Event]) -> None:
        self._started = True
        msg: dict[str, Any] = {"id": _msg_id(chunk.get("id")), "type": "message", "role": "assistant", "content": [],
               "model": chunk.get("model") or self.model, "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": 0, "output_tokens": 0}}
        out.append(("message_start", {"type": "message_start", "message": msg}))

    def _open(self, kind: str, block: dict[str, Any], out: list[Event]) -> int:
        self._stop_block(out)
        idx = self._block = self._next
        self._next += 1
        self._kind = kind
        out.append(("content_block_start", {"type": "content_block_start", "index": idx, "content_block": block}))
        if kind == "text":  # what _delta(idx, {"type": "text_delta", "text": ...}) encodes to, up to the text
            self._text_head = ('event: content_block_delta\ndata: {"type":"content_block_delta","index":'
                               f'{idx},"delta":{{"type":"text_delta","text":"')
        return idx

    def _stop_block(self, out: list[Event]) -> None:
        if self._block >= 0:
            out.append(("content_block_stop", {"type": "content_block_stop", "index": self._block}))
            self._block = -1
            self._kind = ""
            self._live = -1
        self._flush_pending(out)

    def _flush_pending(self, out: list[Event]) -> None:
        """Every pending call as a whole block (its buffered arguments in one delta), in call order."""
        pending = self._pending
        if not pending:
            return
        self._pending = {}
        self._pending_bytes = 0
        for ci in sorted(pending):
            block, pieces = pending[ci]
            idx = self._tool_blocks[ci] = self._next
            self._next += 1
            out.append(("content_block_start", {"type": "content_block_start", "index": idx, "content_block": block}))
            if pieces:
                self._delta(idx, {"type": "input_json_delta", "partial_json": "".join(pieces)}, out)
            out.append(("content_block_stop", {"type": "content_block_stop", "index": idx}))

    def _failed(self) -> bool:
        return self.closed

    def _delta(self, idx: int, delta: dict[str, Any], out: list[Event]) -> None:
        out.append(("content_block_delta", {"type": "content_block_delta", "index": idx, "delta": delta}))

    def event(self, name: str, obj: Any, out: list[Event]) -> None:
        if self.closed:
            return
        if obj is DONE:
            self._close(out)
            return
        if obj is PING:  # an upstream keep-alive comment: the Messages protocol has its own ping event
            if self._started:  # (SDKs refuse any event before message_start)
                out.append(("ping", {"type": "ping"}))
            return
        if not isinstance(obj, dict):
            return
        if "error" in obj and not obj.get("choices"):
            self.fail(chat_stream_error(obj), "api_error", out)
            return
        if not self._started:
            self._start(obj, out)
        if isinstance(obj.get("usage"), dict):
            self._usage = obj["usage"]
        for choice in obj.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            d = choice.get("delta") or {}
            r = d.get("reasoning_content") or d.get("reasoning")
            if isinstance(r, str) and r:
                if self._kind != "thinking":
                    self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""}, out)
                self._delta(self._block, {"type": "thinking_delta", "thinking": r}, out)
            text = d.get("content") or d.get("refusal")  # a streamed refusal is carried as text, not lost
            if isinstance(text, str) and text:
                if self._kind != "text":
                    self._open("text", {"type": "text", "text": ""}, out)
                self._delta(self._block, {"type": "text_delta", "text": text}, out)
            for call in d.get("tool_calls") or ():
                self._tool(call, out)
                if self._failed():  # _tool may have closed the stream (read anew: not the narrowed flag)
                    return
            if choice.get("finish_reason"):
                self._finish = FINISH_TO_STOP.get(choice["finish_reason"], "end_turn")
                if self._kind == "tool_use" or self._pending:  # no more argument deltas can come
                    self._stop_block(out)

    def _tool(self, call: dict[str, Any], out: list[Event]) -> None:
        ci = call.get("index", 0)
        fn = call.get("function") or {}
        args = fn.get("arguments")
        if ci not in self._tool_blocks and ci not in self._pending:
            block: dict[str, Any] = {"type": "tool_use", "id": call.get("id") or f"toolu_{ci}",
                                     "name": fn.get("name") or "", "input": {}}
            if self._kind == "tool_use" and (self._pending or not self._live_complete()):
                self._pending[ci] = (block, [])  # the live call may still get deltas: held
            else:
                self._tool_blocks[ci] = self._open("tool_use", block, out)
                self._live = ci
                self._live_args = []
                self._live_size = 0
        if not isinstance(args, str) or not args:
            return
        if ci == self._live:
            self._keep_live(escape(args))
            self._delta(self._block, {"type": "input_json_delta", "partial_json": args}, out)
        elif ci in self._pending:
            self._pending_bytes += len(args)
            if self._pending_bytes > self._max_pending:
                self.fail(f"parallel tool call arguments held for sequential blocks exceed {self._max_pending} "
                          "bytes", "api_error", out)
                return
            self._pending[ci][1].append(args)
        elif args.strip(" \t\n\r"):  # its block was closed: it cannot be placed, and is never misplaced
            self.fail(f"tool call {ci} sent arguments after its block was closed", "api_error", out)

    def _close(self, out: list[Event]) -> None:
        if not self._started:
            self._start({}, out)
        self._stop_block(out)
        usage = chat_usage_to_anthropic(self._usage) if self._usage else {"output_tokens": 0}
        out.append(("message_delta", {"type": "message_delta",
                                      "delta": {"stop_reason": self._finish or "end_turn", "stop_sequence": None},
                                      "usage": usage}))
        out.append(("message_stop", {"type": "message_stop"}))
        self.closed = True

    def end(self, out: list[Event]) -> None:
        if self.closed:
            return
        if self._finish is not None:  # finish reason seen, [DONE] missing (some servers omit it)
            self._close(out)
        else:
            self.fail("upstream stream ended before the answer was complete", "upstream_incomplete", out)

    def fail(self, message: str, code: str, out: list[Event]) -> None:
        if self.closed:
            return
        etype = code if code.endswith("_error") else "api_error"
        out.append(("error", {"type": "error", "error": {"type": etype, "message": message}}))
        self.closed = True


def whole(comp: dict[str, Any], dropped: set[str]) -> dict[str, Any]:
    """A non-streamed chat.completion as an Anthropic message."""
    choice = (comp.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    r = msg.get("reasoning_content") or msg.get("reasoning")
    if isinstance(r, str) and r:
        content.append({"type": "thinking", "thinking": r, "signature": ""})
    if isinstance(msg.get("content"), str) and msg["content"]:
        content.append({"type": "text", "text": msg["content"]})
    for call in msg.get("tool_calls") or []:
        fn = call.get("function") or {}
        try:
            args = json.loads(fn.get("arguments") or "{}")
        except ValueError:
            args = {"_raw_arguments": fn.get("arguments")}  # kept, never lost: the model wrote invalid JSON
            dropped.add("invalid_tool_arguments")
        content.append({"type": "tool_use", "id": call.get("id", ""), "name": fn.get("name", ""), "input": args})
    return {"id": _msg_id(comp.get("id")), "type": "message", "role": "assistant", "content": content,
            "model": comp.get("model", ""),
            "stop_reason": FINISH_TO_STOP.get(choice.get("finish_reason") or "stop", "end_turn"),
            "stop_sequence": None, "usage": chat_usage_to_anthropic(comp.get("usage") or {})}
