"""Request, OpenAI Responses -> OpenAI chat completions (direction 3; composed with ``chat_to_messages``
for Anthropic providers).

Pure: ``translate(body, ctx) -> dict``. The stateless subset only: ``store`` false or absent;
``previous_response_id``, ``conversation``, ``background`` and server-side tools (web/file search, code
interpreter, computer use, MCP, image generation) are refused with a clear ``TranslateError``.
``instructions`` becomes the system message; ``input`` items (messages, ``function_call``,
``function_call_output``) become chat turns; ``text.format`` becomes ``response_format``;
``max_output_tokens``, ``reasoning.effort``, ``tool_choice``, temperature, top_p, user map across. Earlier
reasoning items cannot travel to a chat provider and are dropped (reported). Must not know about HTTP or
streaming framing.
"""

from __future__ import annotations

from typing import Any

from sluicegate.inference.translate.common import (
    Ctx,
    TranslateError,
    ask_stream_usage,
    check_known,
    want_dict,
    want_list,
)

KNOWN = frozenset({"model", "input", "instructions", "max_output_tokens", "temperature", "top_p", "user",
                   "tools", "tool_choice", "parallel_tool_calls", "stream", "store", "text", "reasoning",
                   "truncation", "include", "metadata", "stream_options"})
_SERVER_TOOLS = ("web_search", "file_search", "code_interpreter", "computer", "mcp", "image_generation",
                 "local_shell", "shell", "apply_patch")


def _content(content: Any, param: str, role: str) -> Any:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for i, p in enumerate(want_list(content, param)):
        p = want_dict(p, f"{param}[{i}]")
        typ = p.get("type")
        if typ in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": str(p.get("text", ""))})
        elif typ == "refusal":
            parts.append({"type": "text", "text": str(p.get("refusal", ""))})
        elif typ == "input_image":
            url = p.get("image_url")
            if not isinstance(url, str):
                raise TranslateError(f"{param}[{i}].image_url", f"{param}[{i}]: only image_url images can be "
                                     "translated (file_id needs the stateful API)")
            parts.append({"type": "image_url", "image_url": {"url": url}})
        else:
            raise TranslateError(f"{param}[{i}].type", f"{param}[{i}]: content type {typ!r} cannot be translated")
    if role != "user" or all(p["type"] == "text" for p in parts):
        return "".join(str(p.get("text", "")) for p in parts)
    return parts


def _input(items: Any, ctx: Ctx) -> list[dict[str, Any]]:
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    out: list[dict[str, Any]] = []
    for i, item in enumerate(want_list(items, "input")):
        param = f"input[{i}]"
        item = want_dict(item, param)
        typ = item.get("type", "message")
        if typ == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise TranslateError(f"{param}.role", f"{param}.role: {role!r} cannot be translated")
            out.append({"role": role, "content": _content(item.get("content"), f"{param}.content", role)})
        elif typ == "function_call":
            call = {"id": str(item.get("call_id", "")), "type": "function",
                    "function": {"name": str(item.get("name", "")), "arguments": str(item.get("arguments", ""))}}
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)  # parallel calls: one assistant turn
            elif last is not None and last["role"] == "assistant" and not last.get("tool_calls"):
                last["tool_calls"] = [call]
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif typ == "function_call_output":
            output = item.get("output")
            if not isinstance(output, str):
                output = _content(output, f"{param}.output", "tool")
            out.append({"role": "tool", "tool_call_id": str(item.get("call_id", "")), "content": output})
        elif typ == "reasoning":
            ctx.dropped.add("input.reasoning")  # opaque to any other provider
        elif typ == "item_reference":
            raise TranslateError(f"{param}.type", f"{param}: item_reference needs stored responses "
                                 "(stateless translation only)")
        else:
            raise TranslateError(f"{param}.type", f"{param}: item type {typ!r} cannot be translated")
    return out


def _tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for i, t in enumerate(want_list(tools, "tools")):
        t = want_dict(t, f"tools[{i}]")
        typ = str(t.get("type", ""))
        if typ != "function":
            kind = "server-side tool" if typ.startswith(_SERVER_TOOLS) else "tool type"
            raise TranslateError(f"tools[{i}].type", f"tools[{i}]: {kind} {typ!r} cannot be translated "
                                 "(function tools only)")
        fn: dict[str, Any] = {"name": t.get("name", ""),
                              "parameters": t.get("parameters") or {"type": "object", "properties": {}}}
        if t.get("description"):
            fn["description"] = t["description"]
        if t.get("strict") is not None:
            fn["strict"] = t["strict"]
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise TranslateError("tool_choice", "tool_choice: must be auto, none, required or a named function")


def translate(body: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    for key in ("previous_response_id", "conversation", "prompt"):
        if body.get(key) is not None:
            raise TranslateError(key, f"{key}: needs server-side state; only stateless Responses requests "
                                 "(store=false) can be translated to this provider")
    if body.get("background"):
        raise TranslateError("background", "background: needs server-side state; cannot be translated")
    check_known(body, KNOWN | {"background"}, ctx, "chat completions")
    if body.get("store") is True:
        ctx.refuse("store", "store=true needs server-side state; send store=false")
    if body.get("truncation") not in (None, "disabled"):
        ctx.refuse("truncation", "only truncation = disabled can be translated")
    if body.get("include"):
        ctx.refuse("include", "include has no chat-completions equivalent")
    if body.get("metadata"):
        ctx.refuse("metadata", "metadata has no chat-completions equivalent")
    messages: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        messages.append({"role": "system", "content": body["instructions"]})
    messages += _input(body.get("input", []), ctx)
    out: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if body.get("max_output_tokens") is not None:
        out["max_completion_tokens" if ctx.target_kind == "openai" else "max_tokens"] = body["max_output_tokens"]
    for key in ("temperature", "top_p", "user", "parallel_tool_calls"):
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        out["tool_choice"] = _tool_choice(body["tool_choice"])
    text = body.get("text")
    if isinstance(text, dict) and isinstance(text.get("format"), dict):
        fmt = text["format"]
        if fmt.get("type") == "json_schema":
            schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
            out["response_format"] = {"type": "json_schema", "json_schema": schema}
        elif fmt.get("type") == "json_object":
            out["response_format"] = {"type": "json_object"}
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort"):
        out["reasoning_effort"] = reasoning["effort"]
    ask_stream_usage(body, out, ctx)
    return out
