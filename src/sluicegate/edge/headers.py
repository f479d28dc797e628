"""Header rules every face shares: hop-by-hop, whose forwarding headers are believed, a changed body's headers.

``HOP_BY_HOP`` / ``is_hop_by_hop`` / ``end_to_end`` / ``strip_hop_by_hop``: the one hop-by-hop rule (RFC 9110
section 7.6.1, the headers that belong to one connection, not the message): the fixed set below, every
``Proxy-*`` name, and every name the ``Connection`` header lists. Every face and the config read it here:
the publisher and the first-party relay strip both directions, the inference face drops
``HOP_BY_HOP_BYTES`` from provider responses, the config refuses a hop-by-hop provider or forwarded header.

``TrustedProxies``: the configured ``[server] trusted_proxies`` CIDRs; only a peer inside them may set
``X-Forwarded-*`` (anyone else could spoof them). ``forwarded_client``: the client address behind a
trusted peer (the access log's client IP, the edge ID's address).

``for_rewritten_body``: the header edits any face makes when it sends a body other than the one it got
(no ``Content-Length``, a weak ``ETag``, no ``Accept-Ranges``).

Must not know any face; imports the standard library only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

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


class TrustedProxies:
    """Is a peer address one of the configured proxies (whose forwarding headers are believed)?"""

    def __init__(self, cidrs: Sequence[str]) -> None:
        self._nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]

    def __contains__(self, peer: str | None) -> bool:
        if not peer or not self._nets:
            return False
        try:
            addr = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(addr in net for net in self._nets)


def forwarded_client(peer: str, xff: str, trusted: TrustedProxies) -> str:
    """The client address behind a trusted ``peer`` (the caller has checked it is one): the right-most
    ``X-Forwarded-For`` address (``xff``: all its values joined by commas) not among the trusted
    proxies; a malformed hop is not believed, nor anything before it (``peer`` then)."""
    hops = [h.strip() for h in xff.split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer
        if hop not in trusted:
            return hop
    return hops[0] if hops else peer


def for_rewritten_body(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The body will differ from the origin's: no Content-Length, a strong ETag becomes weak, and no
    ``Accept-Ranges`` (byte ranges of the origin's body are not ranges of the rewritten one)."""
    out: list[tuple[str, str]] = []
    for name, value in headers:
        ln = name.lower()
        if ln in ("content-length", "accept-ranges"):
            continue
        if ln == "etag" and not value.startswith("W/"):
            value = "W/" + value
        out.append((name, value))
    return out
