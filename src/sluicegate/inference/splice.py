"""Find and replace the top-level ``model`` value of a JSON request body without re-serialising it.

Sans-IO and pure. Every byte outside the ``model`` value token stays as the client sent it (key order,
whitespace, number formatting, escapes). Nested ``model`` keys are never touched; a duplicated top-level
``model`` is refused (parsers disagree on which one wins). Uses the C scanners of ``json`` to step over
values, so the cost is per top-level key, not per byte. Must not know about providers or HTTP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

_DECODER = json.JSONDecoder()
_scanstring = json.decoder.scanstring  # type: ignore[attr-defined]
_WS = " \t\n\r"


class SpliceError(ValueError):
    """The body cannot carry a routable model. ``kind`` is a stable reason for logs and metrics."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class ModelField:
    model: str  # the requested model (decoded)
    start: int  # byte offset of the value token (the opening quote)
    end: int  # byte offset just past the value token

    def splice(self, body: bytes, new_model: str) -> bytes:
        token = json.dumps(new_model, ensure_ascii=False).encode("utf-8")
        return body[: self.start] + token + body[self.end :]


def _skip_ws(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in _WS:
        i += 1
    return i


def find_model(body: bytes) -> ModelField:
    """Locate the top-level ``"model": "<string>"`` of a JSON object body. Raises ``SpliceError``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SpliceError("not_utf8", "request body is not UTF-8 JSON") from None
    i = _skip_ws(text, 0)
    if i >= len(text) or text[i] != "{":
        raise SpliceError("not_object", "request body must be a JSON object")
    i = _skip_ws(text, i + 1)
    found: tuple[str, int, int] | None = None
    try:
        if text[i] == "}":
            i += 1
        else:
            while True:
                if text[i] != '"':
                    raise ValueError("expected a key")
                key, i = _scanstring(text, i + 1, True)
                i = _skip_ws(text, i)
                if text[i] != ":":
                    raise ValueError("expected ':'")
                i = _skip_ws(text, i + 1)
                vstart = i
                if text[i] == '"':
                    value: object
                    value, i = _scanstring(text, i + 1, True)
                else:
                    value, i = _DECODER.raw_decode(text, i)
                if key == "model":
                    if found is not None:
                        raise SpliceError("duplicate_model", "request body has more than one top-level model")
                    if not isinstance(value, str):
                        raise SpliceError("model_not_string", "model must be a string")
                    found = (value, vstart, i)
                i = _skip_ws(text, i)
                if text[i] == ",":
                    i = _skip_ws(text, i + 1)
                    continue
                if text[i] == "}":
                    i += 1
                    break
                raise ValueError("expected ',' or '}'")
    except SpliceError:
        raise
    except (ValueError, IndexError):
        raise SpliceError("invalid_json", "request body is not valid JSON") from None
    if _skip_ws(text, i) != len(text):
        raise SpliceError("invalid_json", "request body has trailing data after the JSON object")
    if found is None:
        raise SpliceError("missing_model", "request body has no model")
    model, cstart, cend = found
    if text.isascii():
        return ModelField(model, cstart, cend)
    start = len(text[:cstart].encode("utf-8"))
    return ModelField(model, start, start + len(text[cstart:cend].encode("utf-8")))
