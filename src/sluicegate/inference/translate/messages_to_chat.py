"""Request, Anthropic Messages -> OpenAI chat completions (direction 2: Claude clients to OpenAI and
OpenAI-compatible providers).

Pure: ``translate(body, ctx) -> dict``. ``system`` becomes the first message; ``tool_result`` blocks become
``role: tool`` messages (ahead of the rest of their user turn, as chat wants); ``tool_use`` blocks become
``tool_calls``; images (base64 or URL) become ``image_url`` parts; thinking blocks of earlier turns travel as
``reasoning_content``. ``max_tokens`` goes out as ``max_completion_tokens`` to ``kind = "openai"`` (its newer
models refuse ``max_tokens``) and as ``max_tokens`` elsewhere; streams ask for
``stream_options.include_usage`` so the final ``message_delta`` has usage. Parameters with no chat
equivalent are refused with ``TranslateError`` unless ``drop_params`` lists them. Must not know about
HTTP or streaming framing.
"""

from __future__ import annotations

from typing import Any

from sluicegate.inference.translate.common import (
    Ctx,
    TranslateError,
    ask_stream_usage,
    check_known,
    data_url,
    dumps,
    want_dict,
    want_list,
)

KNOWN = frozenset({"model", "messages", "system", "max_tokens", "stop_sequences", "temperature", "top_p",
                   "metadata", "tools", "tool_choice", "stream", "thinking"})


def _system(system: Any) -> str:
    if isinstance(system, str):
        return system
    out = []
    for i, b in enumerate(want_list(system, "system")):
        b = want_dict(b, f"system[{i}]")
        if b.get("type") != "text":
            raise TranslateError(f"system[{i}].type", f"system[{i}]: only text blocks are allowed")
        out.append(str(b.get("text", "")))
    return "\n\n".join(out)


def _image(block: dict[str, Any], param: str) -> dict[str, Any]:
    src = want_dict(block.get("source"), f"{param}.source")
    if src.get("type") == "base64":
        url = data_url(str(src.get("media_type", "image/png")), str(src.get("data", "")))
    elif src.get("type") == "url":
        url = str(src.get("url", ""))
    else:
        raise TranslateError(f"{param}.source.type", f"{param}: image source {src.get('type')!r} cannot be "
                             "translated (base64 or url only)")
    return {"type": "image_url", "image_url": {"url": url}}


def _result_content(content: Any, param: str) -> Any:
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for i, b in enumerate(want_list(content, param)):
        b = want_dict(b, f"{param}[{i}]")
        if b.get("type") == "text":
            parts.append({"type": "text", "text": str(b.get("text", ""))})
        elif b.get("type") == "image":
            parts.append(_image(b, f"{param}[{i}]"))
        else:
            raise TranslateError(f"{param}[{i}].type", f"{param}[{i}]: {b.get('type')!r} cannot be translated")
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _turn(msg: dict[str, Any], param: str, out: list[dict[str, Any]]) -> None:
    role = msg.get("role")
    content = msg.get("content")
    if role not in ("user", "assistant"):
        raise TranslateError(f"{param}.role", f"{param}.role: must be user or assistant")
    if isinstance(content, str):
        out.append({"role": role, "content": content})
        return
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    reasoning: list[str] = []
    for i, b in enumerate(want_list(content, f"{param}.content")):
        bp = f"{param}.content[{i}]"
        b = want_dict(b, bp)
        bt = b.get("type")
        if bt == "text":
            parts.append({"type": "text", "text": str(b.get("text", ""))})
        elif bt == "image" and role == "user":
            parts.append(_image(b, bp))
        elif bt == "tool_result" and role == "user":
            text = _result_content(b.get("content"), f"{bp}.content")
            if b.get("is_error") and isinstance(text, str):
                text = f"Error: {text}"
            out.append({"role": "tool", "tool_call_id": str(b.get("tool_use_id", "")), "content": text})
        elif bt == "tool_use" and role == "assistant":
            calls.append({"id": str(b.get("id", "")), "type": "function",
                          "function": {"name": str(b.get("name", "")), "arguments": dumps(b.get("input", {}))}})
        elif bt == "thinking" and role == "assistant":
            reasoning.append(str(b.get("thinking", "")))
        elif bt == "redacted_thinking" and role == "assistant":
            continue  # opaque to every other provider; it only has meaning to the model that wrote it
        else:
            raise TranslateError(f"{bp}.type", f"{bp}: content block {bt!r} cannot be translated")
    if not parts and not calls and not reasoning:
        return
    msg_out: dict[str, Any] = {"role": role}
    if parts and all(p["type"] == "text" for p in parts):
        msg_out["content"] = "".join(p["text"] for p in parts)
    else:
        msg_out["content"] = parts or None
    if calls:
        msg_out["tool_calls"] = calls
    if reasoning:
        msg_out["reasoning_content"] = "".join(reasoning)
    out.append(msg_out)


def _tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for i, t in enumerate(want_list(tools, "tools")):
        t = want_dict(t, f"tools[{i}]")
        if t.get("type") not in (None, "custom") or "input_schema" not in t:
            raise TranslateError(f"tools[{i}].type", f"tools[{i}]: server tool {t.get('type')!r} cannot be "
                                 "translated (client tools with input_schema only)")
        fn: dict[str, Any] = {"name": t.get("name", ""), "parameters": t["input_schema"]}
        if t.get("description"):
            fn["description"] = t["description"]
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: Any) -> tuple[Any, bool]:
    c = want_dict(choice, "tool_choice")
    typ = c.get("type")
    no_parallel = bool(c.get("disable_parallel_tool_use"))
    if typ == "auto":
        return "auto", no_parallel
    if typ == "any":
        return "required", no_parallel
    if typ == "none":
        return "none", no_parallel
    if typ == "tool" and isinstance(c.get("name"), str):
        return {"type": "function", "function": {"name": c["name"]}}, no_parallel
    raise TranslateError("tool_choice", "tool_choice: must be auto, any, none or tool")


def translate(body: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    check_known(body, KNOWN, ctx, "chat completions")
    messages: list[dict[str, Any]] = []
    if body.get("system"):
        messages.append({"role": "system", "content": _system(body["system"])})
    for i, msg in enumerate(want_list(body.get("messages"), "messages")):
        _turn(want_dict(msg, f"messages[{i}]"), f"messages[{i}]", messages)
    out: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    mt = body.get("max_tokens")
    if mt is not None:
        out["max_completion_tokens" if ctx.target_kind == "openai" else "max_tokens"] = mt
    if body.get("stop_sequences"):
        out["stop"] = [str(s) for s in want_list(body["stop_sequences"], "stop_sequences")]
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    meta = body.get("metadata")
    if meta is not None:
        meta = want_dict(meta, "metadata")
        if isinstance(meta.get("user_id"), str):
            out["user"] = meta["user_id"]
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        choice, no_parallel = _tool_choice(body["tool_choice"])
        if "tools" in out:
            out["tool_choice"] = choice
            if no_parallel:
                out["parallel_tool_calls"] = False
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        if ctx.target_kind == "openai":
            budget = int(thinking.get("budget_tokens") or 0)
            out["reasoning_effort"] = "low" if budget < 2048 else "medium" if budget < 8192 else "high"
        else:
            ctx.refuse("thinking", "extended thinking has no chat-completions parameter on this provider")
    ask_stream_usage(body, out, ctx)
    return out
