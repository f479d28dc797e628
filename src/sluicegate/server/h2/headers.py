"""An HTTP/2 request header list judged (RFC 9113 §8.2-8.3) and turned into the parts of an ASGI scope.

Owns: the malformed-request rules the h2 protocol answers with a stream error (RST_STREAM PROTOCOL_ERROR):
pseudo-headers (only ``:method :scheme :authority :path``, each once, all before the regular fields,
``:method``/``:scheme``/``:path`` present, ``:path`` origin-form or ``*`` for OPTIONS), field names
(lowercase tokens), field values (no NUL/CR/LF, no leading/trailing blank), connection-specific fields
(``connection``, ``keep-alive``, ``proxy-connection``, ``transfer-encoding``, ``upgrade``; ``te`` other than
``trailers``), ``:authority`` vs ``host`` (both present and different is malformed); ``:authority``
becomes the ``host`` field the faces read and split ``cookie`` fields are joined (§8.2.3) so an HTTP/1.1
origin gets one ``Cookie``; a request whose HEADERS did not end the stream and that has no
``content-length`` gets ``transfer-encoding: chunked`` (its body is delimited by END_STREAM: the faces,
which follow HTTP/1.1's rule that only these two fields announce a body, then stream it to the origin).
The response side: the header list an ASGI app sends, minus the fields h2 forbids, volatile and secret
values marked never-indexed (the configured request-id header among them: ``never_indexed``).
Sans-IO: bytes in, tuples out; must not know about frames, streams or sockets.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from hpack import NeverIndexedHeaderTuple

from sluicegate.server.h2.options import never_indexed

Header = tuple[bytes, bytes]

_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9a-z]+$")
_BAD_VALUE = re.compile(rb"[\x00\r\n]|^[ \t]|[ \t]$")
_CONNECTION_SPECIFIC = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
                                  b"upgrade"})
_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path"})
_METHOD = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Response fields an ASGI app may set that mean nothing (or something wrong) in HTTP/2.
_DROP_OUT = _CONNECTION_SPECIFIC | {b"te"}
_NEVER_INDEXED = never_indexed()


class Malformed(Exception):
    """The request is malformed (RFC 9113 §8.1.1): the stream is reset with PROTOCOL_ERROR."""


class Request:
    """What the scope needs from a valid request head."""

    __slots__ = ("authority", "headers", "method", "path", "query", "raw_path")

    def __init__(self, method: str, raw_path: bytes, query: bytes, authority: bytes,
                 headers: list[Header]) -> None:
        self.method = method
        self.raw_path = raw_path
        self.path = unquote(raw_path.decode("ascii", "replace"))
        self.query = query
        self.authority = authority
        self.headers = headers


def parse_request(fields: list[Header], body_follows: bool = False) -> Request:
    """Judge a decoded header list; raises ``Malformed`` with the reason (for the log, never the client)."""
    pseudo: dict[bytes, bytes] = {}
    headers: list[Header] = []
    cookies: list[bytes] = []
    host: bytes | None = None
    regular_seen = False
    for name, value in fields:
        if name[:1] == b":":
            if regular_seen:
                raise Malformed(f"pseudo-header {name!r} after a regular field")
            if name not in _PSEUDO:
                raise Malformed(f"unknown pseudo-header {name!r}")
            if name in pseudo:
                raise Malformed(f"duplicate pseudo-header {name!r}")
            if _BAD_VALUE.search(value):
                raise Malformed(f"invalid value of {name!r}")
            pseudo[name] = value
            continue
        regular_seen = True
        if not _TOKEN.match(name):
            raise Malformed(f"invalid field name {name!r} (h2 field names are lowercase tokens)")
        if name in _CONNECTION_SPECIFIC:
            raise Malformed(f"connection-specific field {name.decode()!r} in HTTP/2")
        if _BAD_VALUE.search(value):
            raise Malformed(f"invalid value of field {name.decode()!r}")
        if name == b"te" and value.lower() != b"trailers":
            raise Malformed("te other than 'trailers' in HTTP/2")
        if name == b"cookie":
            cookies.append(value)
            continue
        if name == b"host":
            if host is not None and value != host:
                raise Malformed("two different host fields")
            host = value
            continue
        headers.append((name, value))
    method = pseudo.get(b":method")
    if method is None or not _METHOD.match(method):
        raise Malformed("missing or invalid :method")
    if method == b"CONNECT":
        raise Malformed("CONNECT is not served (no tunnels, no RFC 8441 extended CONNECT)")
    scheme = pseudo.get(b":scheme")
    target = pseudo.get(b":path")
    if not scheme or target is None:
        raise Malformed("missing :scheme or :path")
    if target == b"*":
        if method != b"OPTIONS":
            raise Malformed(":path '*' outside OPTIONS")
    elif target[:1] != b"/":
        raise Malformed(":path is not origin-form")
    try:
        target.decode("ascii")
    except UnicodeDecodeError:
        raise Malformed(":path is not ASCII") from None
    authority = pseudo.get(b":authority")
    if authority is not None and host is not None and authority != host:
        raise Malformed(":authority and host differ")
    authority = authority if authority is not None else host
    if authority is not None:
        headers.insert(0, (b"host", authority))
    if cookies:
        headers.append((b"cookie", b"; ".join(cookies)))
    if body_follows and not any(n == b"content-length" for n, _ in headers):
        headers.append((b"transfer-encoding", b"chunked"))
    raw_path, _, query = target.partition(b"?")
    return Request(method.decode("ascii"), raw_path, query, authority or b"", headers)


def response_headers(status: int, headers: list[Header] | tuple[Header, ...],
                     never: frozenset[bytes] = _NEVER_INDEXED) -> list[Header]:
    """``:status`` first, names lowercased, the fields HTTP/2 forbids dropped (the relay already strips
    hop-by-hop fields; this keeps a stray one from becoming a protocol error on the client), the fields in
    ``never`` (``never_indexed()``) marked never-indexed."""
    out: list[Header] = [(b":status", str(status).encode("ascii"))]
    for name, value in headers:
        low = name.lower()
        if low in _DROP_OUT or low[:1] == b":":
            continue
        out.append(NeverIndexedHeaderTuple(low, value) if low in never else (low, value))
    return out
