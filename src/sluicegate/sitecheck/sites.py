"""What "the same modulo hosts" means to the checker: origin and public authorities, URL mapping, and the
normalisation that makes a direct page and a proxied page comparable.

Sans-IO and independent of ``sluicegate.pipeline.hosts`` on purpose (the checker must not share the
rewriter's blind spots). Must not know: browsers, sockets, the proxy's configuration.

An authority is recognised in text in the spellings a page really carries it: plain (``host:port``), with
the colon percent-encoded (``host%3Aport``, either case), upper- or mixed-case host, after ``//``,
``\\/\\/``, ``%2F%2F`` or ``\\u002F\\u002F``, at hostname boundaries only (``a.origin.example`` or
``origin.example.evil`` are not the origin). ``normalise`` replaces the side's own authorities with one
placeholder and the scheme just before them with another, so ``http://origin:5000/x`` on the direct page and
``https://public.example/x`` on the proxied page both read ``⟨scheme⟩://⟨site⟩/x``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

FORMS = ("none", "get", "all")  # which forms check-site submits on both sides

SITE = "⟨site⟩"
SCHEME = "⟨scheme⟩"
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

# What may stand between a scheme and the authority: "://" in its plain, JS-escaped and percent-encoded forms.
_SEP = r"(?::|%3[aA])(?://|\\/\\/|%2[fF]%2[fF]|\\u002[fF]\\u002[fF])"
# What may stand right before an authority: not part of a longer host name, or the end of an encoded "//".
_BEFORE = r"(?:(?<![\w.-])|(?<=%2[fF])|(?<=\\u002[fF])|(?<=%40))"


class SiteError(ValueError):
    """A URL or authority the checker cannot work with (printed to the user)."""


def split_authority(authority: str, scheme: str = "http") -> tuple[str, int]:
    """``Host:Port`` -> (lower-case host without a trailing dot, port with the scheme's default)."""
    parts = urlsplit(f"{scheme}://{authority}/")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise SiteError(f"not a host name: {authority!r}")
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme, 80)
    except ValueError as exc:
        raise SiteError(f"bad port in {authority!r}") from exc
    return host, port


def url_key(url: str) -> tuple[str, int] | None:
    """(host, port) of an http(s)/ws(s) URL as the browser resolves it, or None for other URLs."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            return None
        return parts.hostname.rstrip(".").lower(), parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        return None


def _authority_pattern(host: str, port: int | None) -> str:
    """Regex for one authority at hostname boundaries; ``port=None`` = the scheme's default (no port)."""
    h = re.escape(host)
    if port is None:
        return _BEFORE + h + r"\.?(?![\w-]|\.[\w-]|(?::|%3[aA])\d)"
    return _BEFORE + h + r"(?::|%3[aA])" + str(port) + r"(?!\d)"


@dataclass
class Side:
    """One side's authorities (the origin and its aliases, or the public host) and its compiled patterns."""

    scheme: str
    authorities: list[tuple[str, int]]
    _pattern: re.Pattern[str] = field(init=False, repr=False)
    _scheme_before: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        alts = []
        for host, port in self.authorities:
            default = _DEFAULT_PORTS.get(self.scheme, 80)
            alts.append(_authority_pattern(host, port))
            if port == default:
                alts.append(_authority_pattern(host, None))
        self._pattern = re.compile("|".join(f"(?:{a})" for a in alts), re.IGNORECASE)
        self._scheme_before = re.compile(r"(?<![\w+.-])https?(?=" + _SEP + re.escape(SITE) + ")", re.IGNORECASE)

    def owns(self, url: str) -> bool:
        key = url_key(url)
        return key is not None and key in self.authorities

    def find(self, text: str) -> list[str]:
        """Every spelling of one of this side's authorities in ``text``."""
        return [m.group(0) for m in self._pattern.finditer(text)]

    def normalise(self, text: str) -> str:
        out = self._pattern.sub(SITE, text)
        return self._scheme_before.sub(SCHEME, out) if SITE in out else out


@dataclass
class SiteMap:
    """The origin (plus aliases) and the public base URL the proxy serves it under."""

    origin_url: str
    public_url: str
    aliases: list[str] = field(default_factory=list)
    origin: Side = field(init=False)
    public: Side = field(init=False)

    def __post_init__(self) -> None:
        o, p = urlsplit(self.origin_url), urlsplit(self.public_url)
        for name, parts in (("site URL", o), ("proxy URL", p)):
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise SiteError(f"{name} must be an absolute http(s) URL, got {urlunsplit(parts)!r}")
        auths = [split_authority(o.netloc, o.scheme)]
        auths += [split_authority(a, o.scheme) for a in self.aliases]
        self.origin = Side(o.scheme, auths)
        self.public = Side(p.scheme, [split_authority(p.netloc, p.scheme)])
        if set(self.origin.authorities) & set(self.public.authorities):
            raise SiteError("the proxy URL must not be one of the origin's authorities")
        self._o_base = f"{o.scheme}://{o.netloc}"
        self._p_base = f"{p.scheme}://{p.netloc}"

    def to_public(self, url: str) -> str:
        """An origin URL as the proxy serves it (other URLs unchanged)."""
        if not self.origin.owns(url):
            return url
        parts = urlsplit(url)
        return self._p_base + urlunsplit(("", "", parts.path or "/", parts.query, parts.fragment))

    def page_key(self, url: str) -> str:
        """Crawl identity of an origin page: fragment dropped, path defaulted."""
        parts = urlsplit(url)
        return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, ""))

    def leaks(self, urls: Iterable[str]) -> list[str]:
        """Request URLs (from the proxied side) whose authority is one of the origin's."""
        return [u for u in urls if self.origin.owns(u)]

    def norm_direct(self, text: str) -> str:
        return self.origin.normalise(text)

    def norm_proxied(self, text: str) -> str:
        return self.public.normalise(text)

    def origin_refs(self, text: str) -> list[str]:
        """Origin authorities still present in proxied text, in whatever spelling."""
        return self.origin.find(text)
