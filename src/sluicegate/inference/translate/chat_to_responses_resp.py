"""Response, OpenAI chat completions -> OpenAI Responses (direction 3; after ``messages_to_chat_resp`` for
Anthropic providers).

``ChatToResponses`` is a stream stage producing the Responses event sequence ``responses.stream()``
accumulates: ``response.created`` / ``response.in_progress``; per output item ``output_item.added``, for a
message ``content_part.added`` + ``output_text.delta``… + ``output_text.done`` + ``content_part.done``, for
a function call ``function_call_arguments.delta``… + ``.done``, for reasoning ``content_part.added``
(``reasoning_text``) + ``reasoning_text.delta``… + ``.done`` + ``content_part.done``; ``output_item.done``;
then ``response.completed`` (or ``response.incomplete`` with
``incomplete_details`` for a length/content-filter finish) carrying the whole output and usage. Every event
has a ``sequence_number``. A message or reasoning item closes when the next item opens; function-call items
stay open until the choice's finish reason (or the end), each delta sent on its own ``output_index`` /
``item_id``: providers that open all parallel calls first and then interleave their argument deltas by index
get every call's full arguments in its ``.done`` events. ``whole`` maps a non-streamed completion to a response
object. Must not know about SSE framing or sockets.
"""

from __future__ import annotations

import time
from typing import Any

from sluicegate.inference.translate.common import chat_stream_error, chat_usage_to_responses
from sluicegate.inference.translate.stream import DONE, PING, RAW, Event, dumps_ascii, escape, loads_str

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def _resp_id(chat_id: Any) -> str:
    return f"resp_{chat_id}" if isinstance(chat_id, str) and chat_id else "resp_sluicegate"


def response_object(rid: str, model: str, created: int, status: str, output: list[dict[str, Any]],
                    usage: dict[str, Any] | None, finish: str | None) -> dict[str, Any]:
    reason = _INCOMPLETE.get(finish or "")
    return {"id": rid, "object": "response", "created_at": created, "status": status,
            "error": None, "incomplete_details": {"reason": reason} if reason and status == "incomplete" else None,
            "model": model, "output": output, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "store": False, "usage": usage}


class ChatToResponses:
    __slots__ = ("_call_oi", "_calls", "_created", "_finish", "_id", "_item", "_model", "_open_calls", "_output",
                 "_seq", "_started", "_text", "_text_head", "_usage", "closed", "dropped")

    def __init__(self, model: str = "") -> None:
        self.closed = False
        self.dropped: set[str] = set()
        self._model = model
        self._id = "resp_sluicegate"
        self._created = int(time.time())
        self._seq = 0
        self._started = False
        self._output: list[dict[str, Any]] = []  # items done so far (and the open one, last)
        self._item: dict[str, Any] | None = None  # the open message / reasoning item
        self._text: list[str] = []  # text of the open message / reasoning item, JSON-escaped pieces
        self._text_head = ""  # the open message's output_text.delta frame up to the escaped text
        self._calls: dict[int, dict[str, Any]] = {}  # chat tool index -> function_call item (open or done)
        self._open_calls: dict[int, dict[str, Any]] = {}  # chat tool index -> function_call item still open
        self._call_oi: dict[int, int] = {}  # chat tool index -> its output_index
        self._usage: dict[str, Any] | None = None
        self._finish: str | None = None

    def passes_text(self) -> bool:
        return False  # always the last stage

    def text_frame(self, esc: str) -> str | None:
        item = self._item
        if item is None or item["type"] != "message" or self.closed:
            return None
        if not esc:
            return ""
        self._text.append(esc)
        seq = self._seq
        self._seq = seq + 1
        # What _emit("response.output_text.delta", {...}) encodes to, the text spliced in.
        return (f'{self._text_head}{esc}","logprobs":[],"type":"response.output_text.delta",'
                f'"sequence_number":{seq}}}\n\n')

    def passes_args(self, index: int) -> int | None:
        return None  # always the last stage

    def args_frame(self, index: int, esc: str) -> str | None:
        item = self._open_calls.get(index)
        if item is None or self.closed:
            return None  # a new (or already closed) call takes the general path
        if not esc:
            return ""
        item["arguments"] += loads_str([esc])
        seq = self._seq
        self._seq = seq + 1
        return (f'event: response.function_call_arguments.delta\ndata: {{"item_id":{dumps_ascii(item["id"])},'
                f'"output_index":{self._call_oi[index]},"delta":"{esc}",'
                f'"type":"response.function_call_arguments.delta","sequence_number":{seq}}}\n\n')

    def _joined(self) -> str:
        """The open item's text (its pieces are kept JSON-escaped: a fast-path delta is never decoded)."""
        return loads_str(self._text)

    def _emit(self, typ: str, payload: dict[str, Any], out: list[Event]) -> None:
        payload["type"] = typ
        payload["sequence_number"] = self._seq
        self._seq += 1
        out.append((typ, payload))

    def _snapshot(self, status: str) -> dict[str, Any]:
        return response_object(self._id, self._model, self._created, status, list(self._output), self._usage,
                               self._finish)

    def _start(self, chunk: dict[str, Any], out: list[Event]) -> None:
        self._started = True
        self._id = _resp_id(chunk.get("id"))
        self._model = chunk.get("model") or self._model
        # The same snapshot twice: encoded once, each frame as _emit(typ, {"response": ...}) would encode it.
        resp = dumps_ascii(self._snapshot("in_progress"))
        for typ in ("response.created", "response.in_progress"):
            out.append((RAW, f'event: {typ}\ndata: {{"response":{resp},"type":"{typ}",'
                             f'"sequence_number":{self._seq}}}\n\n'))
            self._seq += 1

    def _open(self, item: dict[str, Any], out: list[Event]) -> dict[str, Any]:
        """A new output item; the open message / reasoning item closes (open calls stay open: their argument
        deltas may still come, interleaved by index)."""
        self._close_item(out)
        if item["type"] != "function_call":
            self._item = item
            self._text = []
        self._output.append(item)
        self._emit("response.output_item.added", {"output_index": len(self._output) - 1, "item": dict(item)}, out)
        return item

    def _close_item(self, out: list[Event]) -> None:
        item = self._item
        if item is None:
            return
        self._item = None
        self._done(item, self._output.index(item), out)

    def _close_all(self, out: list[Event]) -> None:
        """The choice finished: every open item is done, function calls with their whole arguments."""
        self._close_item(out)
        calls = sorted(self._open_calls.items(), key=lambda kv: self._call_oi[kv[0]])
        self._open_calls = {}
        for ci, item in calls:
            self._done(item, self._call_oi[ci], out)

    def _done(self, item: dict[str, Any], oi: int, out: list[Event]) -> None:
        typ = item["type"]
        if typ == "message":
            text = self._joined()
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            self._emit("response.output_text.done", {"item_id": item["id"], "output_index": oi, "content_index": 0,
                                                     "text": text, "logprobs": []}, out)
            self._emit("response.content_part.done", {"item_id": item["id"], "output_index": oi,
                                                      "content_index": 0, "part": part}, out)
            item["content"] = [part]
        elif typ == "reasoning":
            text = self._joined()
            part = {"type": "reasoning_text", "text": text}
            self._emit("response.reasoning_text.done", {"item_id": item["id"], "output_index": oi,
                                                        "content_index": 0, "text": text}, out)
            self._emit("response.content_part.done", {"item_id": item["id"], "output_index": oi,
                                                      "content_index": 0, "part": part}, out)
            item["content"] = [part]
        elif typ == "function_call":
            self._emit("response.function_call_arguments.done", {"item_id": item["id"], "output_index": oi,
                                                                 "name": item["name"],
                                                                 "arguments": item["arguments"]}, out)
        item["status"] = "completed"
        if typ == "reasoning":
            del item["status"]
        self._emit("response.output_item.done", {"output_index": oi, "item": item}, out)

    def event(self, name: str, obj: Any, out: list[Event]) -> None:
        if self.closed:
            return
        if obj is DONE:
            self._close(out)
            return
        if obj is PING:  # Responses has no ping event: stays an SSE comment
            out.append(("", PING))
            return
        if not isinstance(obj, dict):
            return
        if "error" in obj and not obj.get("choices"):
            self.fail(chat_stream_error(obj), "upstream_error", out)
            return
        if not self._started:
            self._start(obj, out)
        if isinstance(obj.get("usage"), dict):
            self._usage = chat_usage_to_responses(obj["usage"])
        for choice in obj.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            d = choice.get("delta") or {}
            oi = len(self._output) - 1
            r = d.get("reasoning_content") or d.get("reasoning")
            if isinstance(r, str) and r:
                item = self._item
                if item is None or item["type"] != "reasoning":
                    item = self._open({"id": f"rs_{self._id[5:]}_{len(self._output)}", "type": "reasoning",
                                       "summary": [], "content": []}, out)
                    oi = len(self._output) - 1
                    # The SDKs' accumulators need the part before its deltas (as for output_text).
                    self._emit("response.content_part.added", {
                        "item_id": item["id"], "output_index": oi, "content_index": 0,
                        "part": {"type": "reasoning_text", "text": ""}}, out)
                self._text.append(escape(r))
                self._emit("response.reasoning_text.delta", {"item_id": item["id"], "output_index": oi,
                                                             "content_index": 0, "delta": r}, out)
            text = d.get("content") or d.get("refusal")  # a streamed refusal is carried as text, not lost
            if isinstance(text, str) and text:
                item = self._item
                if item is None or item["type"] != "message":
                    item = self._open({"id": f"msg_{self._id[5:]}_{len(self._output)}", "type": "message",
                                "status": "in_progress", "role": "assistant", "content": []}, out)
                    oi = len(self._output) - 1
                    self._emit("response.content_part.added", {
                        "item_id": item["id"], "output_index": oi, "content_index": 0,
                        "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}, out)
                    self._text_head = ('event: response.output_text.delta\ndata: {"item_id":' + dumps_ascii(item["id"])
                                       + f',"output_index":{oi},"content_index":0,"delta":"')
                self._text.append(escape(text))
                self._emit("response.output_text.delta", {"item_id": item["id"], "output_index": oi,
                                                          "content_index": 0, "delta": text, "logprobs": []}, out)
            for call in d.get("tool_calls") or ():
                self._tool(call, out)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
                self._close_all(out)

    def _tool(self, call: dict[str, Any], out: list[Event]) -> None:
        ci = call.get("index", 0)
        fn = call.get("function") or {}
        item = self._calls.get(ci)
        if item is None:
            call_id = call.get("id") or f"call_{ci}"
            item = {"id": f"fc_{call_id}", "type": "function_call", "status": "in_progress", "call_id": call_id,
                    "name": fn.get("name") or "", "arguments": ""}
            self._calls[ci] = self._open_calls[ci] = item
            self._call_oi[ci] = len(self._output)
            self._open(item, out)
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            if ci not in self._open_calls:  # after the choice's finish reason: its item is already done
                self.dropped.add("tool_arguments_after_finish")
                return
            item["arguments"] += args
            self._emit("response.function_call_arguments.delta", {
                "item_id": item["id"], "output_index": self._call_oi[ci], "delta": args}, out)

    def _close(self, out: list[Event]) -> None:
        if not self._started:
            self._start({}, out)
        self._close_all(out)
        incomplete = self._finish in _INCOMPLETE
        status = "incomplete" if incomplete else "completed"
        self._emit("response.incomplete" if incomplete else "response.completed",
                   {"response": self._snapshot(status)}, out)
        self.closed = True

    def end(self, out: list[Event]) -> None:
        if self.closed:
            return
        if self._finish is not None:
            self._close(out)
        else:
            self.fail("upstream stream ended before the answer was complete", "upstream_incomplete", out)

    def fail(self, message: str, code: str, out: list[Event]) -> None:
        if self.closed:
            return
        err = {"message": message, "type": "proxy_stream_error", "param": None, "code": code}
        self._emit("error", {"code": code, "message": message, "param": None, "error": err}, out)
        if self._started:
            resp = self._snapshot("failed")
            resp["error"] = {"code": "server_error", "message": message}
            self._emit("response.failed", {"response": resp}, out)
        self.closed = True


def whole(comp: dict[str, Any], dropped: set[str]) -> dict[str, Any]:
    """A non-streamed chat.completion as a Responses response object."""
    choice = (comp.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    rid = _resp_id(comp.get("id"))
    output: list[dict[str, Any]] = []
    r = msg.get("reasoning_content") or msg.get("reasoning")
    if isinstance(r, str) and r:
        output.append({"id": f"rs_{rid[5:]}_0", "type": "reasoning", "summary": [],
                       "content": [{"type": "reasoning_text", "text": r}]})
    if isinstance(msg.get("content"), str) and msg["content"]:
        output.append({"id": f"msg_{rid[5:]}_{len(output)}", "type": "message", "status": "completed",
                       "role": "assistant", "content": [{"type": "output_text", "text": msg["content"],
                                                         "annotations": [], "logprobs": []}]})
    for call in msg.get("tool_calls") or []:
        fn = call.get("function") or {}
        output.append({"id": f"fc_{call.get('id', '')}", "type": "function_call", "status": "completed",
                       "call_id": call.get("id", ""), "name": fn.get("name", ""),
                       "arguments": fn.get("arguments", "")})
    finish = choice.get("finish_reason")
    status = "incomplete" if finish in _INCOMPLETE else "completed"
    usage = chat_usage_to_responses(comp["usage"]) if isinstance(comp.get("usage"), dict) else None
    return response_object(rid, comp.get("model", ""), int(comp.get("created") or time.time()), status, output,
                           usage, finish)
