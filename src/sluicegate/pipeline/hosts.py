"""Origin-host matching: which byte sequences name the origin, and what they become.

Owns the one rule every rewriter shares (text, HTML attributes, script bodies, Flight rows,
response headers): an origin reference is rewritten only at hostname boundaries, in one pass.

Forms matched (case-insensitive, ASCII):  ``https://O``  ``http://O``  ``//O``  ``https:\\/\\/O``
``\\/\\/O`` and a bare ``O``, where ``O`` is the origin host plus its port when the port is not
the scheme default (``O:default`` is accepted too). A match is refused when the host continues:
``O.evil.com``, ``O-cdn``, ``xO``, ``sub.O``, ``O:8443`` (another port) are all left alone.

Does not know about chunking (see ``text.StreamingHostReplacer``) or markup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}

# A byte that would make the text before/after a match part of a longer host name.

_HOST_AFTER_DEFAULT_PORT = r"(?![A-Za-z0-9_\-]|\.[A-Za-z0-9\-]|:[0-9])"
_HOST_AFTER_EXPLICIT_PORT = r"(?![0-9])"

# Bytes of right-context the lookahead may inspect, beyond the match itself.
_LOOKAHEAD = 2


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str  # lower-case, no brackets for names; IPv6 literals keep their brackets
    port: int

    @property
    def default_port(self) -> bool:
        return _DEFAULT_PORTS.get(self.scheme) == self.port

    @property
    def authority(self) -> str:
        return self.host if self.default_port else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}"

    @classmethod
    def parse(cls, url: str) -> Origin:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise ValueError(f"origin URL must be http:// or https://, got {url!r}")
        if not parts.hostname:
            raise ValueError(f"origin URL has no host: {url!r}")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"origin URL must be scheme://host[:port] only, got {url!r}")
        if parts.username or parts.password:
            raise ValueError("origin URL must not carry credentials")
        host = parts.hostname.lower()
        if ":" in host:
            host = f"[{host}]"
        port = parts.port or _DEFAULT_PORTS[scheme]
        return cls(scheme, host, port)


_HOST_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-")
_URL_FIRST = frozenset("hH/\\")
_URL_FIRST_B = frozenset(b"hH/\\")
_ASCII_SPACE = b" \t\n\r\x0b\x0c"  # what bytes.lstrip() strips; str.lstrip() strips more
_PREFIXES = ((b"https:\\/\\/", True), (b"http:\\/\\/", True), (b"\\/\\/", False),
             (b"https://", True), (b"http://", True), (b"//", False))
_HTTPS_ESC, _HTTP_ESC, _SLASHES_ESC, _HTTPS, _HTTP, _SLASHES = range(len(_PREFIXES))


class OriginMatcher:
    """Compiled once per configured origin; hands out per-request ``HostRewriter`` objects.

    Scanning searches the lower-cased buffer for the host literal (a fast C search), then looks
    at the few bytes before it for a scheme / slash prefix. Matches are rare, so the per-match
    Python work does not matter; the per-byte work is all inside ``bytes.lower`` and ``re``.
    """

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        host = re.escape(origin.host)
        if origin.default_port:
            auth = f"{host}(?::{origin.port})?{_HOST_AFTER_DEFAULT_PORT}"
        else:
            auth = f"{host}:{origin.port}{_HOST_AFTER_EXPLICIT_PORT}"
        self.pattern: re.Pattern[bytes] = re.compile(auth.encode())
        # A host match is decided once ``tail`` bytes from its start are known; its prefix
        # (scheme, slashes) reaches at most ``max_prefix`` bytes back. A streaming scanner holds
        # back ``hold`` = both, so it never emits bytes that a later decision could still claim.
        self.max_prefix = max(len(p) for p, _ in _PREFIXES)
        self.tail = len(origin.host) + len(":65535") + _LOOKAHEAD
        self.hold = self.tail + self.max_prefix
        self.needle = origin.host.encode()

    def matches(self, buf: bytes, start: int, limit: int) -> list[tuple[int, int, int]]:
        """``(start, end, form)`` of each origin reference whose host starts in ``[start, limit]``.

        ``form`` indexes ``_PREFIXES`` (or is ``-1`` for a bare host). Matches never begin before
        ``start``; bytes before ``start`` are only read as look-behind context.
        """
        lowered = buf.lower()
        if self.needle not in lowered:
            return []
        found: list[tuple[int, int, int]] = []
        pos = start
        for m in self.pattern.finditer(lowered, start):
            h, end = m.span()
            if h > limit:
                break
            # The prefix, decided from the bytes before the host (longest form first, never
            # reaching back before the previous match): a few byte reads, not six startswith.
            c = lowered[h - 1] if h > pos else 0
            if c == 0x2F and h - 1 > pos and lowered[h - 2] == 0x2F:  # "//"
                if h - 8 >= pos and lowered.startswith(b"https:", h - 8):
                    found.append((h - 8, end, _HTTPS))
                elif h - 7 >= pos and lowered.startswith(b"http:", h - 7):
                    found.append((h - 7, end, _HTTP))
                else:
                    found.append((h - 2, end, _SLASHES))
            elif c == 0x2F and h - 4 >= pos and lowered.startswith(b"\\/\\", h - 4):  # "\/\/"
                if h - 10 >= pos and lowered.startswith(b"https:", h - 10):
                    found.append((h - 10, end, _HTTPS_ESC))
                elif h - 9 >= pos and lowered.startswith(b"http:", h - 9):
                    found.append((h - 9, end, _HTTP_ESC))
                else:
                    found.append((h - 4, end, _SLASHES_ESC))
            elif h == 0 or lowered[h - 1] not in _HOST_CHARS:
                found.append((h, end, -1))
            else:
                continue
            pos = end
        return found

    def for_request(self, public_scheme: str, public_authority: str) -> HostRewriter:
        return HostRewriter(self, public_scheme.lower(), public_authority)


class HostRewriter:
    """Maps origin references to the host the browser used, for one request."""

    def __init__(self, matcher: OriginMatcher, public_scheme: str, public_authority: str) -> None:
        self.matcher = matcher
        self.hold = matcher.hold
        self.tail = matcher.tail
        self.max_prefix = matcher.max_prefix
        self.public_scheme = public_scheme
        self.public_authority = public_authority
        pub = public_authority.encode()
        sch = public_scheme.encode()
        # Replacement per prefix form; the scheme follows the client's, escaped slashes stay escaped.
        forms = [
            (sch + b":" + prefix.split(b":", 1)[1] if has_scheme else prefix) + pub for prefix, has_scheme in _PREFIXES
        ]
        self.replacements: tuple[bytes, ...] = (*forms, pub)  # index -1: a bare host
        self.needle = matcher.needle
        self.pattern = matcher.pattern
        # ``rewrite_url_bytes``: the prefix forms by (lower-cased) first byte, in ``_PREFIXES`` order.
        self._url_forms: dict[int, tuple[tuple[int, bytes], ...]] = {
            c: tuple((i, p) for i, (p, _) in enumerate(_PREFIXES) if p[0] == (c | 0x20 if c == 0x48 else c))
            for c in b"hH/\\"
        }

    def splice(self, buf: bytes, start: int, limit: int) -> tuple[list[bytes], int]:
        """Rewritten pieces of ``buf[start:]`` up to the end of the last match found; and that end."""
        out: list[bytes] = []
        pos = start
        repl = self.replacements
        for m_start, m_end, form in self.matcher.matches(buf, start, limit):
            out.append(buf[pos:m_start])
            out.append(repl[form])
            pos = m_end
        return out, pos

    def might_contain(self, data: bytes) -> bool:
        """Cheap pre-check: can ``data`` hold an origin reference at all?"""
        return self.matcher.needle in data.lower()

    def rewrite(self, data: bytes) -> bytes:
        """Rewrite a complete buffer (no chunk boundary inside)."""
        out, pos = self.splice(data, 0, len(data))
        if not out:
            return data
        out.append(data[pos:])
        return b"".join(out)

    def rewrite_text(self, value: str) -> str:
        """Rewrite a decoded string (an attribute value, a JSON string...)."""
        raw = value.encode("utf-8", "surrogatepass")
        new = self.rewrite(raw)
        return value if new is raw else new.decode("utf-8", "surrogatepass")

    def rewrite_url(self, value: str) -> str:
        """Rewrite one URL value only when the URL itself starts with an origin reference
        (``https://O/...``, ``//O/...``); relative URLs and other hosts are left alone."""
        stripped = value.lstrip()
        if not stripped or stripped[0] not in _URL_FIRST:
            return value  # every prefix form starts with h, H, / or a backslash
        lead = len(value) - len(stripped)
        raw = stripped.encode("utf-8", "surrogatepass")
        found = self.matcher.matches(raw, 0, self.max_prefix)
        if not found or found[0][0] != 0 or found[0][2] < 0:
            return value
        _, end, form = found[0]
        return value[:lead] + self.replacements[form].decode() + raw[end:].decode("utf-8", "surrogatepass")

    def rewrite_url_bytes(self, value: bytes) -> bytes | None:
        """``rewrite_url`` on a raw UTF-8 value: the same result, encoded, without decoding.

        Returns ``value`` itself when nothing changes and ``None`` when only the ``str`` version can
        decide (the value begins with a character ``str.lstrip`` strips but ``bytes.lstrip`` does
        not: U+001C..U+001F or a non-ASCII space).
        """
        stripped = value.lstrip(_ASCII_SPACE)
        if not stripped:
            return value
        c = stripped[0]
        if c not in _URL_FIRST_B:
            return None if (0x1C <= c <= 0x1F or c >= 0x80) else value
        low = stripped[: self.hold].lower()
        needle = self.needle
        for form, prefix in self._url_forms[c]:
            if low.startswith(prefix):
                k = len(prefix)
                # The host right after the prefix, and no earlier host match (a host that
                # overlaps the prefix would be ``matches``' first find): exactly ``rewrite_url``.
                if low.find(needle, 0, k + len(needle) - 1) >= 0:
                    return self._rewrite_url_slow(value, stripped)
                m = self.pattern.match(low, k)
                if m is None:
                    return value
                return value[: len(value) - len(stripped)] + self.replacements[form] + stripped[m.end() :]
        return value

    def _rewrite_url_slow(self, value: bytes, stripped: bytes) -> bytes:
        found = self.matcher.matches(stripped, 0, self.max_prefix)
        if not found or found[0][0] != 0 or found[0][2] < 0:
            return value
        _, end, form = found[0]
        return value[: len(value) - len(stripped)] + self.replacements[form] + stripped[end:]
