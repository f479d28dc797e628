"""The streaming gate: what may be done with a response body, decided from its head alone.

``classify(method, status, headers)`` is a pure function. First match wins:

1. **Bodiless**  HEAD, 1xx, 204, 205, 304: headers only (``bodiless_headers`` fixes framing).
2. **PassThrough**  not processable (images, fonts, media, octet-stream, event-stream, unknown):
   bytes untouched, ``Content-Length``/``Content-Encoding`` kept, each chunk forwarded as it arrives.
3. **PassThrough**  processable but encoded with a codec we cannot decode, or several stacked.
4. **Stream**  processable: decode, rewrite, re-encode with the same codec, at any status.

There is no buffered route: a body is never held whole on the product path (``sluicegate.dev.buffered``
does that outside it, for the A/B benchmark).

Processable is decided on the parsed media type (``application/jsonp`` is not JSON; ``+json`` and
``+xml`` suffixes are). This module knows nothing about sockets or rewriting rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum


class Route(Enum):
    BODILESS = "bodiless"
    PASS_THROUGH = "pass_through"
    STREAM = "stream"


class Kind(Enum):
    """Which processor a processable body gets."""

    HTML = "html"
    FLIGHT = "flight"
    TEXT = "text"
    NONE = "none"


DECODABLE = ("gzip", "deflate", "br", "zstd")

_TEXT_TYPES = frozenset(
    {
        "text/css",
        "text/javascript",
        "application/javascript",
        "application/x-javascript",
        "application/ecmascript",
        "text/ecmascript",
        "application/json",
        "text/plain",
        "text/xml",
        "application/xml",
        "application/manifest+json",
    }
)


@dataclass(frozen=True)
class Decision:
    route: Route
    kind: Kind = Kind.NONE
    encoding: str = ""  # the single decodable codec for Stream ("" = identity)
    reason: str = ""


def media_type(content_type: str | None) -> str:
    """``'Text/HTML; charset=utf-8'`` -> ``'text/html'``."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def charset_of(content_type: str) -> str | None:
    """``text/html; charset="Shift_JIS"`` -> ``shift_jis``; None when not declared."""
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').strip("'").lower() or None
    return None


def processor_kind(mtype: str) -> Kind:
    if mtype in ("text/html", "application/xhtml+xml"):
        return Kind.HTML
    if mtype == "text/x-component":
        return Kind.FLIGHT
    if mtype in _TEXT_TYPES or mtype.endswith("+json") or mtype.endswith("+xml"):
        return Kind.TEXT
    return Kind.NONE


def response_carries_body(method: str, status: int) -> bool:
    return method != "HEAD" and status >= 200 and status not in (204, 205, 304)


def classify(method: str, status: int, headers: Iterable[tuple[str, str]]) -> Decision:
    if not response_carries_body(method.upper(), status):
        return Decision(Route.BODILESS, reason=f"{method} {status} carries no body")
    ctype = ""
    codings: list[str] = []
    for name, value in headers:  # one pass: the last Content-Type wins, codings accumulate in order
        ln = name.lower()
        if ln == "content-type":
            ctype = value
        elif ln == "content-encoding":
            codings += [c for c in (t.strip().lower() for t in value.split(",")) if c and c != "identity"]
    kind = processor_kind(media_type(ctype))
    if kind is Kind.NONE:
        return Decision(Route.PASS_THROUGH, reason="not a processable media type")
    if len(codings) > 1:
        return Decision(Route.PASS_THROUGH, kind, reason="stacked content codings")
    if codings and codings[0] not in DECODABLE:
        return Decision(Route.PASS_THROUGH, kind, reason=f"cannot decode {codings[0]!r}")
    return Decision(Route.STREAM, kind, codings[0] if codings else "")


def bodiless_headers(status: int, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Framing for a response sent without a body.

    HEAD and 304 keep ``Content-Length`` (it describes the GET representation); 204 must not
    carry one; 205 says ``Content-Length: 0``.
    """
    if status == 204:
        return [(k, v) for k, v in headers if k.lower() not in ("content-length", "transfer-encoding")]
    if status == 205:
        kept = [(k, v) for k, v in headers if k.lower() not in ("content-length", "transfer-encoding")]
        return [*kept, ("content-length", "0")]
    return headers
