"""Request, OpenAI chat completions -> Anthropic Messages (direction 1; also the second leg of Responses
-> Anthropic).

Pure: ``translate(body, ctx) -> dict``. System/developer turns become ``system``; consecutive same-role
turns and tool results merge into one turn (the Messages API wants alternation); images by URL or data
URL become image blocks; tools, tool_choice, stop, max tokens (``default_max_tokens`` when the client gave
none), temperature, top_p, user and reasoning effort are mapped. Parameters with no Messages equivalent
are refused with ``TranslateError`` unless the model's ``drop_params`` lists them. Must not know about
HTTP or streaming framing.
"""

from __future__ import annotations

from typing import Any

from sluicegate.inference.translate.common import (
    Ctx,
    TranslateError,
    check_known,
    parse_arguments,
    split_data_url,
    want_dict,
    want_list,
)

KNOWN = frozenset({"model", "messages", "max_tokens", "max_completion_tokens", "stop", "temperature", "top_p",
                   "user", "tools", "tool_choice", "parallel_tool_calls", "stream", "stream_options", "n",
                   "reasoning_effort", "response_format", "store"})
_EFFORT_BUDGET = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}


def _text_of(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    parts = want_list(content, param)
    out = []
    for i, p in enumerate(parts):
        p = want_dict(p, f"{param}[{i}]")
        if p.get("type") not in ("text", "input_text", "output_text"):
            raise TranslateError(f"{param}[{i}].type", f"{param}[{i}]: only text parts are allowed here")
        out.append(str(p.get("text", "")))
    return "".join(out)


def _image(part: dict[str, Any], param: str) -> dict[str, Any]:
    ref = part.get("image_url")
    url = ref.get("url") if isinstance(ref, dict) else ref
    if not isinstance(url, str) or not url:
        raise TranslateError(f"{param}.image_url", f"{param}.image_url: needs a url")
    parsed = split_data_url(url)
    if parsed is not None:
        return {"type": "image", "source": {"type": "base64", "media_type": parsed[0], "data": parsed[1]}}
    if not url.startswith(("https://", "http://")):
        raise TranslateError(f"{param}.image_url", f"{param}.image_url: must be an http(s) or base64 data URL")
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: Any, param: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    out: list[dict[str, Any]] = []
    for i, part in enumerate(want_list(content, param)):
        p = want_dict(part, f"{param}[{i}]")
        typ = p.get("type")
        if typ in ("text", "input_text", "output_text"):
            if p.get("text"):
                out.append({"type": "text", "text": str(p["text"])})
        elif typ in ("image_url", "input_image"):
            out.append(_image(p, f"{param}[{i}]"))
        elif typ == "refusal":
            out.append({"type": "text", "text": str(p.get("refusal", ""))})
        else:
            raise TranslateError(f"{param}[{i}].type", f"{param}[{i}]: content type {typ!r} has no Messages "
                                 "equivalent")
    return out


def _push(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)  # consecutive same-role turns merge into one
    else:
        messages.append({"role": role, "content": blocks})


def _tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for i, t in enumerate(want_list(tools, "tools")):
        t = want_dict(t, f"tools[{i}]")
        if t.get("type", "function") != "function":
            raise TranslateError(f"tools[{i}].type", f"tools[{i}]: only function tools can be translated")
        fn = want_dict(t.get("function"), f"tools[{i}].function")
        if not isinstance(fn.get("name"), str):
            raise TranslateError(f"tools[{i}].function.name", f"tools[{i}].function.name: required")
        tool: dict[str, Any] = {"name": fn["name"],
                                "input_schema": fn.get("parameters") or {"type": "object", "properties": {}}}
        if fn.get("description"):
            tool["description"] = fn["description"]
        out.append(tool)
    return out


def _tool_choice(choice: Any) -> dict[str, Any]:
    if choice == "auto":
        return {"type": "auto"}
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        if isinstance(name, str):
            return {"type": "tool", "name": name}
    raise TranslateError("tool_choice", "tool_choice: must be auto, none, required or a named function")


def translate(body: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    check_known(body, KNOWN, ctx, "Anthropic Messages")
    n = body.get("n")
    if n is not None and n != 1:
        ctx.refuse("n", "only n = 1 can be translated (Messages returns one choice)")
    rf = body.get("response_format")
    if isinstance(rf, dict) and rf.get("type") not in (None, "text"):
        ctx.refuse("response_format", f"response_format {rf.get('type')!r} has no Messages equivalent")
    if body.get("store") is True:
        ctx.refuse("store", "stored completions have no Messages equivalent")
    out: dict[str, Any] = {"model": body.get("model")}
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for i, msg in enumerate(want_list(body.get("messages"), "messages")):
        param = f"messages[{i}]"
        msg = want_dict(msg, param)
        role = msg.get("role")
        content = msg.get("content")
        if role in ("system", "developer"):
            text = _text_of(content, f"{param}.content")
            if text:
                system.append({"type": "text", "text": text})
        elif role == "user":
            _push(messages, "user", _blocks(content, f"{param}.content"))
        elif role == "assistant":
            blocks = _blocks(content, f"{param}.content")
            for j, call in enumerate(msg.get("tool_calls") or []):
                cp = f"{param}.tool_calls[{j}]"
                call = want_dict(call, cp)
                fn = want_dict(call.get("function"), f"{cp}.function")
                blocks.append({"type": "tool_use", "id": str(call.get("id") or f"call_{i}_{j}"),
                               "name": str(fn.get("name", "")),
                               "input": parse_arguments(fn.get("arguments", "{}"), f"{cp}.function.arguments")})
            _push(messages, "assistant", blocks)
        elif role == "tool":
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": str(msg.get("tool_call_id", ""))}
            if isinstance(content, str):
                result["content"] = content
            else:
                result["content"] = [b for b in _blocks(content, f"{param}.content")]
            _push(messages, "user", [result])  # several tool results become one user turn
        else:
            raise TranslateError(f"{param}.role", f"{param}.role: {role!r} cannot be translated")
    # Tool results must open the user turn they sit in (the Messages API checks this).
    for m in messages:
        if m["role"] == "user":
            m["content"].sort(key=lambda b: 0 if b.get("type") == "tool_result" else 1)
    if system:
        out["system"] = system
    out["messages"] = messages
    mt = body.get("max_completion_tokens")
    if mt is None:
        mt = body.get("max_tokens")
    if mt is None:
        mt = ctx.default_max_tokens
    if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
        raise TranslateError("max_tokens", "max_tokens: must be a positive integer")
    out["max_tokens"] = mt
    stop = body.get("stop")
    if stop is not None:
        seqs = [stop] if isinstance(stop, str) else want_list(stop, "stop")
        if seqs:
            out["stop_sequences"] = [str(s) for s in seqs]
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
        choice = _tool_choice(body.get("tool_choice") or "auto")
        if body.get("parallel_tool_calls") is False and choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
        out["tool_choice"] = choice
    elif body.get("tool_choice") not in (None, "none", "auto"):
        raise TranslateError("tool_choice", "tool_choice: names a tool but no tools are given")
    effort = body.get("reasoning_effort")
    if effort is not None:
        budget = _EFFORT_BUDGET.get(effort)
        if budget is None:
            raise TranslateError("reasoning_effort", "reasoning_effort: must be minimal, low, medium or high")
        budget = min(budget, out["max_tokens"] - 1)
        if budget < 1024:
            ctx.refuse("reasoning_effort", "extended thinking needs max_tokens above 1024")
        else:
            out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if body.get("stream"):
        out["stream"] = True
        ctx.stream = True
        opts = body.get("stream_options")
        ctx.include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
    return out
