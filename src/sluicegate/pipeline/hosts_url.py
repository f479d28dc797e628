"""The start of a URL value, read the way the browser's URL parser (WHATWG) reads it.

Owns one question for ``HostRewriter.rewrite_url``: does this attribute value, resolved against a
page of the public site, name an origin authority (the origin or an alias), and if so, which
characters of the value are that scheme + authority? Handles what the byte forms of ``hosts``
cannot see: a scheme in any case, ``\\`` for ``/``, any number of slashes after ``http(s):``,
tab/newline inside the value, percent-encoded host characters, upper case, a trailing dot,
credentials, a spelled-out default port. What it cannot decide (non-ASCII hosts, IPv4 shorthand)
is left alone.

Works on decoded strings only (character references are the HTML layer's business).
Must not know: markup, chunking, configuration.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import unquote

if TYPE_CHECKING:
    from sluicegate.pipeline.hosts import HostRewriter

_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*):")
_DEFAULT = {"http": 80, "https": 443}
_C0_SPACE = "".join(chr(i) for i in range(0x21))
_FORBIDDEN_HOST = frozenset(" #/:<>?@[\\]^|%\x00\t\n\r")


def browser_url_start(rw: HostRewriter, value: str) -> tuple[str, int] | None:
    """``(new head, k)`` when ``value`` (an attribute's decoded value) is an absolute or
    scheme-relative URL whose authority is an origin authority: ``value[:k]`` (leading spaces,
    scheme, slashes, credentials, authority) is to be replaced by ``new head``; else None."""
    # 1. The byte forms of the one mapping, when one stands right at the start.
    lead = len(value) - len(value.lstrip(_C0_SPACE))
    raw = value[lead:].encode("utf-8", "surrogatepass")
    if raw[:1] in (b"h", b"H", b"/", b"\\"):
        found = rw.matcher.matches(raw, 0, rw.max_prefix)
        if found and found[0][0] == 0 and found[0][2] >= 0:
            _, end, form = found[0]
            new = rw.replacement(raw, 0, end, form).decode("utf-8", "surrogatepass")
            return value[:lead] + new, lead + len(raw[:end].decode("utf-8", "surrogatepass"))
    # 2. The parser's reading.
    if (not rw.might_contain(value.lower().encode("utf-8", "surrogatepass"))
            and not any(c in value for c in "%\t\n\r")):
        return None
    return _parse_start(rw, value, lead)


def _parse_start(rw: HostRewriter, value: str, lead: int) -> tuple[str, int] | None:
    # The parser removes tab and newline anywhere; keep the original index of every kept char.
    idx = [i for i in range(lead, len(value)) if value[i] not in "\t\n\r"]
    s = "".join(value[i] for i in idx)
    p = 0
    m = _SCHEME.match(s)
    scheme = ""
    if m is not None:
        scheme = m.group(1).lower()
        if scheme not in _DEFAULT:
            return None
        p = m.end()
        q = p
        while q < len(s) and s[q] in "/\\":
            q += 1
        if scheme == rw.public_scheme and q - p < 2:
            return None  # "https:foo" on an https page is a relative path
        p = q
    else:
        q = 0
        while q < len(s) and s[q] in "/\\":
            q += 1
        if q < 2:
            return None
        p = q
    e = p
    while e < len(s) and s[e] not in "/\\?#":
        e += 1
    authority = s[p:e]
    at = authority.rfind("@")
    userinfo = authority[: at + 1] if at >= 0 else ""
    hostport = authority[at + 1 :]
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            return None
        host, rest = hostport[: close + 1], hostport[close + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_s = rest[1:]
    else:
        host, _, port_s = hostport.partition(":")
    if port_s and not port_s.isdigit():
        return None
    port = int(port_s) if port_s else None
    if port is not None and port > 65535:
        return None
    if "%" in host:
        try:
            host = unquote(host, errors="strict")
        except UnicodeDecodeError:
            return None
    if not host.isascii():
        return None
    host = host.lower()
    if host.endswith(".") and not host.startswith("["):
        host = host[:-1]
    if not host or (not host.startswith("[") and any(c in _FORBIDDEN_HOST for c in host)):
        return None
    default = _DEFAULT[scheme or rw.public_scheme]
    effective = port if port is not None else default
    if not any(a.host == host and (effective in (80, 443) if a.port is None else effective == a.port)
               for a in rw.matcher.authorities):
        return None
    head = (rw.public_scheme + "://" if scheme else "//") + userinfo + rw.public_authority
    k = idx[e - 1] + 1 if e > 0 else lead
    return value[:lead] + head, k
