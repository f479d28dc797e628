"""The one hop-by-hop rule (RFC 9110 section 7.6.1): which headers belong to one connection, not the message.

Every face and the config read it from here: the publisher strips both directions with
``strip_hop_by_hop``/``end_to_end``, the inference face drops ``HOP_BY_HOP_BYTES`` from provider
responses, and the config refuses a provider header or forwarded header that is hop-by-hop.

Hop-by-hop: the fixed set below, every ``Proxy-*`` name (``Proxy-Authorization``, ``Proxy-Connection``,
...), and every name the ``Connection`` header lists. Must not know any face; imports nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

HOP_BY_HOP: frozenset[str] = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
"""Lower-case names that are hop-by-hop whatever ``Connection`` says."""

HOP_BY_HOP_BYTES: frozenset[bytes] = frozenset(name.encode("ascii") for name in HOP_BY_HOP)
"""The same names as the server's lower-case bytes (ASGI header lists)."""


def is_hop_by_hop(lower_name: str) -> bool:
    """A lower-case name that is hop-by-hop without looking at ``Connection`` (the set, or ``proxy-*``)."""
    return lower_name in HOP_BY_HOP or lower_name.startswith("proxy-")


def end_to_end(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """``(lower-case name, name, value)`` of every header that is not hop-by-hop; one pass, names lowered once."""
    out: list[tuple[str, str, str]] = []
    listed: set[str] | None = None
    for name, value in headers:
        ln = name.lower()
        if ln in HOP_BY_HOP or ln.startswith("proxy-"):
            if ln == "connection":
                listed = (listed or set()) | {t.strip().lower() for t in value.split(",") if t.strip()}
            continue
        out.append((ln, name, value))
    if listed:
        out = [item for item in out if item[0] not in listed]
    return out


def strip_hop_by_hop(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop hop-by-hop headers, including every name listed in ``Connection`` and ``Proxy-*``."""
    return [(name, value) for _, name, value in end_to_end(headers)]
