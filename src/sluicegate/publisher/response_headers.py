"""Response headers on the way to the client: the host mapping applied to every header value.

Owns the header rule of the round trip (docs/round-trip.md): every end-to-end response header value
goes through the one mapping (``pipeline.hosts.HostRewriter.rewrite_text``), whatever its name, so a
header nobody listed (``X-Pingback``, ``X-Canonical``...) cannot carry an origin URL to the client.
Exceptions, each with its own rule or none:

* ``NOT_MAPPED``: values that never name a host and whose bytes other parts rely on (framing,
  validators, dates, media type, codings).
* ``Set-Cookie``: the cookie value goes through the mapping; ``Domain=`` has its own rule
  (``cookie_domain``); the other attributes stay.
* ``Content-Security-Policy`` / ``-Report-Only``: host sources go through the mapping; a wildcard
  ``*.O`` over an origin name stays (subdomains of the origin are not mapped, so their resources still
  load from there) and the public host is added beside it, because an alias under ``O`` is mapped to it.

Must not know about bodies, sockets or how a match is found (that is ``pipeline.hosts``).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Sequence

from sluicegate.config.origin import Origin
from sluicegate.pipeline.hosts import HostRewriter

# Never mapped: no host can be named in them, or their bytes must stay exactly as the origin sent them.
NOT_MAPPED = frozenset(
    {
        "date",
        "expires",
        "last-modified",
        "age",
        "etag",
        "content-length",
        "content-type",
        "content-encoding",
        "content-range",
        "accept-ranges",
        "cache-control",
        "vary",
        "retry-after",
        "content-md5",
        "digest",
        "content-digest",
        "repr-digest",
        "x-request-id",
        # a realm is bound into Digest hashes; signatures cover the bytes as the origin sent them
        "www-authenticate",
        "authentication-info",
        "signature",
        "signature-input",
    }
)
CSP_HEADERS = frozenset({"content-security-policy", "content-security-policy-report-only"})


def origin_names(origin: Origin, origin_host_header: str = "", aliases: Sequence[str] = ()) -> frozenset[str]:
    """The host names of the origin's own authorities, lower-case, without port or brackets.

    The one place Set-Cookie ``Domain`` and CSP wildcards learn "which names are the origin's":
    ``origin_url``'s host, ``origin_host_header``'s and those of ``[publisher] origin_aliases``.
    """
    names = {origin.host.strip("[]")}
    for extra in (origin_host_header, *aliases):
        if extra:
            names.add(_hostname(extra))
    return frozenset(n for n in names if n)


def _hostname(authority: str) -> str:
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority[1 : authority.find("]")] if "]" in authority else authority
    return authority.partition(":")[0].rstrip(".")


@functools.lru_cache(maxsize=1024)
def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def site_domain(public_name: str, public_hosts: Sequence[str]) -> str:
    """The domain a site-wide cookie gets on the public side: the longest domain that the public host
    and every other configured public host name share, so the cookie reaches all the hosts we serve.

    No public suffix list: a shared parent of two labels whose last label is a two-letter country code
    (``co.uk``, ``com.au`` shapes) is refused and the public host itself is used, because a browser
    rejects a cookie whose Domain is a public suffix. With one public host, that host is the answer.
    """
    names = [_hostname(h) for h in public_hosts if h != "*"]
    names = [n for n in names if n and not _is_ip(n) and n != public_name]
    labels = public_name.split(".")
    best = public_name
    for n in names:
        other = n.split(".")
        k = 0
        while k < min(len(labels), len(other)) and labels[-1 - k] == other[-1 - k]:
            k += 1
        if k < 2:
            continue  # nothing shared but a top-level domain: this host does not belong with ours
        shared = ".".join(labels[-k:])
        if len(shared) < len(best):
            best = shared
    parts = best.split(".")
    if len(parts) == 2 and len(parts[1]) == 2 and best != public_name:
        return public_name
    return best


_COOKIE_DOMAIN = re.compile(r";\s*domain\s*=\s*([^;]*)", re.IGNORECASE)


def cookie_domain(domain: str, names: frozenset[str], public_name: str, public_hosts: Sequence[str]) -> str | None:
    """What a ``Domain=`` attribute becomes: unchanged text, a new domain, or ``None`` (drop it).

    * not an origin name nor a parent of one: unchanged (another site's cookie is not ours to move);
    * the public host is an IP literal or a single label (``localhost``): dropped, the cookie is host-only;
    * exactly an origin name (the cookie covered that host and its subdomains): the public host name;
    * a parent of an origin name (a site-wide cookie, ``Domain=.example.com``): ``site_domain``.
    """
    d = domain.strip().lower().lstrip(".").rstrip(".")
    if not d:
        return domain
    exact = d in names
    parent = not exact and any(n.endswith("." + d) for n in names)
    if not (exact or parent):
        return domain
    if _is_ip(public_name.strip("[]")) or "." not in public_name:
        return None  # an IP cannot carry Domain; a single-label name (localhost) is refused by browsers
    return public_name if exact else site_domain(public_name, public_hosts)


def map_set_cookie(
    value: str, rewriter: HostRewriter, names: frozenset[str], public_name: str, public_hosts: Sequence[str]
) -> str:
    pair, sep, attrs = value.partition(";")
    pair = rewriter.rewrite_text(pair)
    if not sep:
        return pair
    if "domain" not in attrs.lower():
        return pair + sep + attrs

    def repl(m: re.Match[str]) -> str:
        new = cookie_domain(m.group(1), names, public_name, public_hosts)
        if new is None:
            return ""
        return m.group(0) if new is m.group(1) else f"; Domain={new}"

    return pair + _COOKIE_DOMAIN.sub(repl, sep + attrs)


def map_csp(value: str, rewriter: HostRewriter, names: frozenset[str], public_authority: str) -> str:
    """Map each source of each directive; keep ``*.O`` wildcards and add the public host beside them."""
    if "*." not in value:
        return rewriter.rewrite_text(value)  # sources are space-separated: mapping the whole is the same
    out = []
    for directive in value.split(";"):
        tokens = directive.split()
        if not tokens:
            out.append(directive)
            continue
        mapped = [rewriter.rewrite_text(t) for t in tokens]
        wild = any(_wildcard_over(t, names) for t in tokens[1:])
        if wild and public_authority.lower() not in (t.lower() for t in mapped[1:]):
            mapped.append(public_authority)
        lead = directive[: len(directive) - len(directive.lstrip())]
        out.append(lead + " ".join(mapped))
    return ";".join(out)


def _wildcard_over(source: str, names: frozenset[str]) -> bool:
    s = source.lower()
    if "://" in s:
        s = s.split("://", 1)[1]
    if not s.startswith("*."):
        return False
    host = _hostname(s[2:].split("/", 1)[0])
    if _is_ip(host):
        return False  # "*.127.0.0.1" names no subdomain of anything
    return any(n == host or n.endswith("." + host) for n in names)


def map_response_headers(
    headers: Iterable[tuple[str, str, str]],
    rewriter: HostRewriter,
    names: frozenset[str],
    public_hosts: Sequence[str],
) -> list[tuple[str, str]]:
    """``(lower-case name, name, value)`` end-to-end headers -> ``(name, value)`` with the mapping applied.

    Fast path: the values under the general rule are mapped once as one ``\n``-joined text (a line
    break is a boundary for every form the mapping knows, so nothing can match across two values);
    only when that changes something is each value mapped on its own.
    """
    items = list(headers)
    out: list[tuple[str, str]] = [(name, value) for _, name, value in items]
    general = [i for i, (ln, _, _) in enumerate(items) if ln not in NOT_MAPPED and ln not in _OWN_RULE]
    if general:
        blob = "\n".join(items[i][2] for i in general)
        if rewriter.rewrite_text(blob) != blob:
            for i in general:
                out[i] = (items[i][1], rewriter.rewrite_text(items[i][2]))
    for i, (ln, name, value) in enumerate(items):
        if ln == "set-cookie":
            out[i] = (name, map_set_cookie(value, rewriter, names, _hostname(rewriter.public_authority), public_hosts))
        elif ln in CSP_HEADERS:
            out[i] = (name, map_csp(value, rewriter, names, rewriter.public_authority))
    return out


_OWN_RULE = CSP_HEADERS | {"set-cookie"}
