"""Header transforms on the publisher path: pure functions of header lists and request facts.

Owns: hop-by-hop stripping (both directions, by ``edge.headers``' one rule), forwarding headers and who may set them,
Accept-Encoding narrowing, the public host check; the response header mapping itself is
``response_headers`` (every value mapped, a short documented exception list).
Must not know about bodies or sockets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

from sluicegate.config.origin import Origin
from sluicegate.edge.headers import TrustedProxies, end_to_end
from sluicegate.pipeline.codecs import narrow_accept_encoding
from sluicegate.pipeline.hosts import HostRewriter
from sluicegate.publisher.response_headers import map_response_headers, origin_names

Headers = list[tuple[str, str]]

_FORWARDING = frozenset(
    {"forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-real-ip", "via"}
)
_DEFAULT_PORT = {"http": "80", "https": "443"}


_HOST_SYNTAX = re.compile(r"^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._\-]+)(?::[0-9]{1,5})?$")


def split_host(host: str) -> tuple[str, str]:
    """``'Example.com:8080'`` -> ``('example.com', '8080')``; IPv6 literals keep their brackets."""
    host = host.lower()
    if host.startswith("["):
        end = host.find("]")
        rest = host[end + 1 :]
        return host[: end + 1], rest[1:] if rest.startswith(":") else ""
    name, _, port = host.partition(":")
    return name, port


def valid_host(host: str) -> bool:
    return bool(_HOST_SYNTAX.match(host))


def host_allowed(host: str, scheme: str, public_hosts: Sequence[str]) -> bool:
    """Is ``host`` (from Host / :authority) one we serve? A default port may be written or not."""
    host = host.lower()
    if "*" in public_hosts or host in public_hosts:
        return True
    name, port = split_host(host)
    default = _DEFAULT_PORT.get(scheme, "")
    if port == default:
        return name in public_hosts
    return not port and f"{name}:{default}" in public_hosts


class ClientFacts:
    """What we believe about the client, after applying the trusted-proxy rule. Read-only (``Final``: mypy refuses a
    store). A plain slotted class, not a frozen dataclass: that one's ``__init__`` runs interpreted, one
    ``object.__setattr__`` per field, per request."""

    __slots__ = ("host", "ip", "scheme", "trusted_peer")

    def __init__(self, ip: str, scheme: str, host: str, trusted_peer: bool) -> None:
        self.ip: Final = ip
        self.scheme: Final = scheme  # the scheme the browser used
        self.host: Final = host  # Host / :authority, validated against public_hosts
        self.trusted_peer: Final = trusted_peer

    def __repr__(self) -> str:
        return (f"ClientFacts(ip={self.ip!r}, scheme={self.scheme!r}, host={self.host!r}, "
                f"trusted_peer={self.trusted_peer})")


def client_facts(peer_ip: str, scope_scheme: str, host: str, headers: Headers, trusted: TrustedProxies) -> ClientFacts:
    is_trusted = peer_ip in trusted
    scheme = scope_scheme
    if is_trusted:
        for n, v in headers:
            if n.lower() == "x-forwarded-proto" and v.strip().lower() in ("http", "https"):
                scheme = v.strip().lower()
    return ClientFacts(peer_ip, scheme, host, is_trusted)


def upstream_request_headers(
    headers: Headers, facts: ClientFacts, origin: Origin, host_override: str, request_id: str,
    id_header: str = "x-request-id",
) -> Headers:
    """Client headers as the origin should see them."""
    out: Headers = []
    prior_xff = ""
    prior_via = ""
    for ln, name, value in end_to_end(headers):
        if ln == "host" or ln == id_header:
            continue
        if ln in _FORWARDING:
            if facts.trusted_peer:
                if ln == "x-forwarded-for":
                    prior_xff = f"{prior_xff}, {value}" if prior_xff else value
                    continue
                if ln == "via":
                    prior_via = f"{prior_via}, {value}" if prior_via else value
                    continue
                if ln in ("x-forwarded-proto", "x-forwarded-host"):
                    continue  # re-set below from what we concluded
                out.append((name, value))
            continue
        if ln == "accept-encoding":
            narrowed = narrow_accept_encoding(value)
            if narrowed is not None:
                out.append(("accept-encoding", narrowed))
            continue
        out.append((name, value))
    out.append(("host", host_override or origin.authority))
    out.append(("x-forwarded-for", f"{prior_xff}, {facts.ip}" if prior_xff else facts.ip))
    out.append(("x-forwarded-proto", facts.scheme))
    out.append(("x-forwarded-host", facts.host))
    out.append(("via", f"{prior_via}, 1.1 sluicegate" if prior_via else "1.1 sluicegate"))
    out.append((id_header, request_id))
    return out


def downstream_response_headers(
    headers: Iterable[tuple[str, str]],
    rewriter: HostRewriter,
    origin: Origin,
    request_id: str,
    *,
    id_header: str = "x-request-id",
    origin_host_header: str = "",
    public_hosts: Sequence[str] = (),
    aliases: Sequence[str] = (),
    names: frozenset[str] | None = None,
) -> Headers:
    """Origin response headers as the client should see them (framing is the caller's job).

    Every value goes through the host mapping except the short list in ``response_headers``;
    the origin's own request-id header is replaced by ours. ``names``: ``origin_names(origin,
    origin_host_header, aliases)`` computed once by the caller (the relay), else here.
    """
    if names is None:
        names = origin_names(origin, origin_host_header, aliases)
    out = map_response_headers(
        ((ln, n, v) for ln, n, v in end_to_end(headers) if ln != id_header), rewriter, names, public_hosts
    )
    out.append((id_header, request_id))
    return out


def for_not_modified(headers: Headers, if_none_match: str) -> Headers:
    """A 304 to a client that validated with the weak ETag we gave it (``W/"x"``, from a rewritten body)
    carries ``W/"x"`` too, not the origin's strong ``"x"``: a strong validator must never come to label
    the rewritten bytes in the client's cache."""
    if "W/" not in if_none_match:
        return headers
    out: Headers = []
    for name, value in headers:
        if name.lower() == "etag" and not value.startswith("W/") and f"W/{value.strip()}" in if_none_match:
            value = "W/" + value.strip()
        out.append((name, value))
    return out
