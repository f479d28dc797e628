"""The one origin mapping: which byte sequences name the origin, and what they become.

Owns the one rule every rewriter shares (HTML attributes and text, script bodies, Flight rows,
CSS/JS/JSON, response headers): an origin reference is rewritten only at hostname boundaries,
in one pass, into the public scheme and authority of the request.

Authorities: the origin's (``origin_url``) and each configured alias (``[publisher]
origin_aliases``, plus ``origin_host_header`` when it differs). An authority with a default port
(or an alias given without one) matches ``H``, ``H:80``/``H:443``; one with an explicit port
matches only ``H:port``. The port separator may be ``:`` or ``%3A``; a host may end with one
trailing dot when a URL delimiter follows (``origin.example./p``: the dot is dropped).

Forms, found in a lower-cased copy (so any letter case): ``https://A``, ``http://A``, ``//A``;
JSON-escaped ``https:\\/\\/A``, ``\\/\\/A``; ``\\u002F``-escaped ``https:\\u002F\\u002FA``,
``\\u002F\\u002FA``; percent-encoded once (a query value or fragment) ``https%3A%2F%2FA``,
``%2F%2FA`` (after such a prefix the host itself may be percent-encoded, ``origin%2Eexample``:
decided on the once-decoded host, the public host encoded alike); and a bare ``A`` at a hostname
boundary. A match is refused when the host continues
(``A.evil.com``, ``A-cdn``, ``xA``, ``sub.A``, another port). The scheme becomes the client's;
escaped and percent-encoded prefixes keep their escape and hex case, and the public authority is
percent-encoded like the original (``:`` as ``%3A``/``%3a``) when the reference was. Double
encodings (``%252F``), malformed escapes and other hosts are never touched.

``HostRewriter.rewrite_url`` additionally decides a URL *value* (an attribute) the way the
browser's URL parser reads it (``hosts_url``): backslashes, any number of slashes, percent-encoded
host characters, upper case, a trailing dot, a spelled-out default port.

Does not know about chunking (see ``text.StreamingHostReplacer``) or markup.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from sluicegate.config.origin import Authority, Origin
from sluicegate.pipeline.bytescan import find_bytes, is_ws
from sluicegate.pipeline.hosts_loop import HostLoop
from sluicegate.pipeline.hosts_url import browser_url_start

# What may follow a host for the match to stand (else the host continues: another name/port).
_HOST_AFTER_DEFAULT_PORT: Final = r"(?![a-z0-9_\-]|\.[a-z0-9\-]|:[0-9]|%3a[0-9])"
_HOST_AFTER_EXPLICIT_PORT: Final = r"(?![0-9])"
# One trailing dot belongs to the host when a URL delimiter follows it.
_TRAILING_DOT: Final = r"(?:\.(?=[/?#:]|%(?:2f|3f|23|3a)))?"
_PORT_SEP: Final = r"(?::|%3a)"

# Bytes of right-context the lookahead may inspect, beyond the match itself.
_LOOKAHEAD: Final = 5
# Bytes of already-emitted left context a streaming caller keeps for the boundary check of a bare
# host (one byte, or a JS/JSON escape such as ``\\u0026`` and the backslashes before it).
CONTEXT: Final = 12


def origin_authorities(origin: Origin, aliases: Iterable[str] = ()) -> tuple[Authority, ...]:
    """The origin's authority first, then each distinct alias."""
    first = Authority(origin.host, None if origin.default_port else origin.port)
    out = [first]
    for a in aliases:
        auth = Authority.parse(a)
        if auth.host == origin.host and (auth.port == origin.port or (auth.port is None and origin.default_port)):
            continue  # the origin's own authority
        if auth not in out:
            out.append(auth)
    return tuple(out)


def _host_pattern(origin: Origin, auth: Authority, *, first: bool) -> str:
    host = re.escape(auth.host) + _TRAILING_DOT
    if first:  # the origin: exactly the historical rule (its own default port is optional)
        if origin.default_port:
            return f"{host}(?:{_PORT_SEP}{origin.port})?{_HOST_AFTER_DEFAULT_PORT}"
        return f"{host}{_PORT_SEP}{origin.port}{_HOST_AFTER_EXPLICIT_PORT}"
    if auth.port is None:
        return f"{host}(?:{_PORT_SEP}(?:80|443))?{_HOST_AFTER_DEFAULT_PORT}"
    return f"{host}{_PORT_SEP}{auth.port}{_HOST_AFTER_EXPLICIT_PORT}"


_HOST_CHARS: Final = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-")
_HOST_CHARS_B: Final = frozenset(bytes([c]) for c in _HOST_CHARS)
_URL_FIRST: Final = frozenset("hH/\\")
_URL_FIRST_B: Final = frozenset(b"hH/\\")
_ASCII_SPACE: Final = b" \t\n\r\x0b\x0c"  # what bytes.lstrip() strips; str.lstrip() strips more
_PREFIXES: Final = ((b"https:\\/\\/", True), (b"http:\\/\\/", True), (b"\\/\\/", False),
                    (b"https://", True), (b"http://", True), (b"//", False))
_HTTPS_ESC: Final = 0
_HTTP_ESC: Final = 1
_SLASHES_ESC: Final = 2
_HTTPS: Final = 3
_HTTP: Final = 4
_SLASHES: Final = 5  # the indexes of ``_PREFIXES``
# Forms whose replacement is made from the matched bytes (escape / hex case kept):
_U_HTTPS: Final = 6  # \u002F\u002F
_U_HTTP: Final = 7
_U_SLASHES: Final = 8
_P_HTTPS: Final = 9  # %3A%2F%2F, %2F%2F
_P_HTTP: Final = 10
_P_SLASHES: Final = 11
_BARE_PCT: Final = 12  # a bare host whose port separator is %3A
_ENC_HOST: Final = 32  # flag on a %2F%2F form: the host itself is percent-encoded (``origin%2Eexample``)
_DYNAMIC: Final = 16  # flag on a form: the matched authority spells its port separator %3A
_U_SL: Final = b"\\u002f\\u002f"
_P_SL: Final = b"%2f%2f"
# Every prefix an origin reference can start with (lower case), for streaming decisions.
REF_PREFIXES: Final[tuple[bytes, ...]] = (
    b"https://", b"http://", b"//", b"https:\\/\\/", b"http:\\/\\/", b"\\/\\/",
    b"https:" + _U_SL, b"http:" + _U_SL, _U_SL, b"https%3a" + _P_SL, b"http%3a" + _P_SL, _P_SL, b"",
)
MAX_PREFIX: Final = max(len(p) for p in REF_PREFIXES)


def _escaped_boundary(low: bytes, h: int, pos: int) -> bool:
    """Whether the host char before ``low[h]`` is the end of a JS/JSON escape (``\\n``, ``\\t``,
    ``\\u0026``... after an odd number of backslashes) that decodes to a non-host character: the
    string the escape stands for has a hostname boundary there (Flight rows, JSON, JS strings)."""
    c = low[h - 1]
    if c in b"nrtbfv" and h - 2 >= pos and low[h - 2] == 0x5C:
        k = h - 2
    elif h - 6 >= pos and low[h - 6] == 0x5C and low[h - 5] == 0x75 and _is_hex4(low[h - 4 : h]):
        if chr(int(low[h - 4 : h], 16)).encode("utf-8", "surrogatepass")[:1] in _HOST_CHARS_B:
            return False
        k = h - 6
    else:
        return False
    n = 0
    while k - n >= pos and low[k - n] == 0x5C:
        n += 1
    return n % 2 == 1


# A run of host/port characters after a percent-encoded ``%2F%2F``: unreserved bytes and escapes.
_ENC_RUN: Final = re.compile(rb"(?:[a-z0-9\-._~:]|%[0-9a-f]{2})+")
_ESC1: Final = re.compile(rb"%([0-9a-f]{2})")


def _decode_run(run: bytes) -> tuple[bytes, list[int]]:
    """``run`` (lower case) percent-decoded once, and where each decoded byte ends in ``run``."""
    dec = bytearray()
    ends: list[int] = []
    i = 0
    for m in _ESC1.finditer(run):
        s = m.start()
        for j in range(i, s):
            dec.append(run[j])
            ends.append(j + 1)
        dec.append(int(m.group(1), 16))
        ends.append(m.end())
        i = m.end()
    for j in range(i, len(run)):
        dec.append(run[j])
        ends.append(j + 1)
    return bytes(dec), ends


def _is_hex4(b: bytes) -> bool:
    return len(b) == 4 and all(c in b"0123456789abcdef" for c in b)


class OriginMatcher:
    """Compiled once per configured origin (+ aliases); hands out per-request ``HostRewriter``s.

    Scanning searches the lower-cased buffer for the host literal(s) (a fast C search: one
    ``bytes.find`` with no aliases, one compiled alternation with aliases), then looks at the
    few bytes before a host for a scheme / slash prefix. Matches are rare, so the per-match
    Python work does not matter.
    """

    def __init__(self, origin: Origin, aliases: Iterable[str] = ()) -> None:
        self.origin = origin
        self.authorities = origin_authorities(origin, aliases)
        alts = [_host_pattern(origin, a, first=i == 0) for i, a in enumerate(self.authorities)]
        # longest host first, so that at one position the longer authority wins
        alts_sorted = [p for _, p in sorted(zip(self.authorities, alts, strict=True), key=lambda x: -len(x[0].host))]
        src = alts_sorted[0] if len(alts_sorted) == 1 else "(?:" + "|".join(alts_sorted) + ")"
        self.pattern: re.Pattern[bytes] = re.compile(src.encode())
        self.needles: tuple[bytes, ...] = tuple(dict.fromkeys(a.host.encode() for a in self.authorities))
        self.needle = self.needles[0]  # the origin host: the single-needle fast path
        self.single = len(self.needles) == 1
        self._needle_re: re.Pattern[bytes] = re.compile(b"|".join(re.escape(n) for n in self.needles))
        # A host match is decided once ``tail`` bytes from its start are known; its prefix
        # (scheme, slashes) reaches at most ``max_prefix`` bytes back. A streaming scanner holds
        # back ``hold`` = both, so it never emits bytes that a later decision could still claim.
        self.max_prefix = MAX_PREFIX
        longest = max(len(n) for n in self.needles)
        # a percent-encoded host (``origin%2Eexample``) spells each byte in up to three
        self.tail = 3 * (longest + 1 + len(":65535") + _LOOKAHEAD) + 3
        self.hold = self.tail + self.max_prefix
        self.ref_forms: tuple[bytes, ...] = tuple(p + n for n in self.needles for p in REF_PREFIXES)
        # ``match_end``'s byte loop (one authority only; aliases use the regex)
        self._loop = HostLoop(self.needle, str(origin.port).encode(), origin.default_port) if self.single else None

    def match_end(self, low: bytes, i: int, lend: int) -> int:
        """``self.pattern.match(low, i, lend).end()``, or -1 when it does not match: with one
        authority ``hosts_loop.HostLoop`` (a byte loop), else the regex."""
        loop = self._loop
        if loop is None:
            m = self.pattern.match(low, i, lend)
            return -1 if m is None else m.end()
        return loop.match_end(low, i, lend)

    def find_needle(self, low: bytes, start: int = 0, end: int | None = None) -> int:
        """Position of the first host literal in lower-cased ``low[start:end]``, or -1."""
        stop = len(low) if end is None else end
        if self.single:
            return low.find(self.needle, start, stop)
        m = self._needle_re.search(low, start, stop)
        return -1 if m is None else m.start()

    def contains_needle(self, low: bytes) -> bool:
        if self.single:
            return self.needle in low
        return self._needle_re.search(low) is not None

    def matches(self, buf: bytes, start: int, limit: int, escapes: bool = True) -> list[tuple[int, int, int]]:
        """``(start, end, form)`` of each origin reference whose host starts in ``[start, limit]``.

        ``form`` indexes ``_PREFIXES`` (or is ``-1`` for a bare host; ``>= 6`` or with the
        ``_DYNAMIC`` flag: a form whose replacement ``HostRewriter.replacement`` makes from the
        matched bytes). Matches never begin before ``start``; bytes before ``start`` are only read
        as look-behind context. ``escapes``: the bytes are JS/JSON source, so a bare host right
        after an escape such as ``\\n`` or ``\\u0026`` stands at a boundary (False for HTML text
        and decoded strings, where a backslash is just a character).
        """
        lowered = buf.lower()
        if not self.contains_needle(lowered):
            if lowered.find(_P_SL, max(0, start - 6)) < 0:
                return []
            return self._encoded_matches(lowered, start, limit)
        found: list[tuple[int, int, int]] = []
        pos = start
        lb = 0  # look-behind may read context before ``start``, never a previous match
        for m in self.pattern.finditer(lowered, start):
            h, end = m.span()
            if h > limit:
                break
            # The prefix, decided from the bytes before the host (longest form first, never
            # reaching back before the previous match): a few byte reads, not a dozen startswith.
            c = lowered[h - 1] if h > pos else 0
            if c == 0x2F and h - 1 > pos and lowered[h - 2] == 0x2F:  # "//"
                if h - 8 >= pos and lowered.startswith(b"https:", h - 8):
                    s, form = h - 8, _HTTPS
                elif h - 7 >= pos and lowered.startswith(b"http:", h - 7):
                    s, form = h - 7, _HTTP
                else:
                    s, form = h - 2, _SLASHES
            elif c == 0x2F and h - 4 >= pos and lowered.startswith(b"\\/\\", h - 4):  # "\/\/"
                if h - 10 >= pos and lowered.startswith(b"https:", h - 10):
                    s, form = h - 10, _HTTPS_ESC
                elif h - 9 >= pos and lowered.startswith(b"http:", h - 9):
                    s, form = h - 9, _HTTP_ESC
                else:
                    s, form = h - 4, _SLASHES_ESC
            elif c == 0x66 and h - 12 >= pos and lowered.startswith(_U_SL, h - 12):  # "\u002f\u002f"
                if h - 18 >= pos and lowered.startswith(b"https:", h - 18):
                    s, form = h - 18, _U_HTTPS
                elif h - 17 >= pos and lowered.startswith(b"http:", h - 17):
                    s, form = h - 17, _U_HTTP
                else:
                    s, form = h - 12, _U_SLASHES
            elif c == 0x66 and h - 6 >= pos and lowered.startswith(_P_SL, h - 6):  # "%2f%2f"
                if h - 14 >= pos and lowered.startswith(b"https%3a", h - 14):
                    s, form = h - 14, _P_HTTPS
                elif h - 13 >= pos and lowered.startswith(b"http%3a", h - 13):
                    s, form = h - 13, _P_HTTP
                elif h - 7 >= pos and lowered[h - 7] == 0x25:  # "%%2f%2f"... or "%252f%2f": not ours
                    continue
                else:
                    s, form = h - 6, _P_SLASHES
            elif h == 0 or lowered[h - 1] not in _HOST_CHARS or (escapes and _escaped_boundary(lowered, h, lb)):
                s, form = h, -1
            else:
                continue
            if lowered.find(b"%3a", h, end) >= 0:  # port separator percent-encoded
                form = _BARE_PCT if form < 0 else form | _DYNAMIC
            found.append((s, end, form))
            pos = lb = end
        if lowered.find(_P_SL, max(0, start - 6)) >= 0:
            enc = self._encoded_matches(lowered, start, limit)
            if enc:
                found = _merge(found, enc)
        return found

    def _encoded_matches(self, lowered: bytes, start: int, limit: int) -> list[tuple[int, int, int]]:
        """Matches whose host is percent-encoded after a percent-encoded prefix (``%2F%2F``,
        ``https%3A%2F%2F``): decided on the once-decoded host; the host must hold an escape other
        than the port separator (plain hosts are the main scan's)."""
        found: list[tuple[int, int, int]] = []
        p = lowered.find(_P_SL, max(0, start - 6))
        while p >= 0:
            h = p + 6
            if h > limit:
                break
            m = _ENC_RUN.match(lowered, h, h + self.tail)
            if m is not None and b"%" in m.group() and not (p >= 1 and lowered[p - 1] == 0x25):
                if p >= 8 and lowered.startswith(b"https%3a", p - 8):
                    s, form = p - 8, _P_HTTPS
                elif p >= 7 and lowered.startswith(b"http%3a", p - 7):
                    s, form = p - 7, _P_HTTP
                else:
                    s, form = p, _P_SLASHES
                dec, ends = _decode_run(m.group())
                hm = self.pattern.match(dec)
                if s >= start and hm is not None and b"%" not in dec[: hm.end()]:
                    end = h + ends[hm.end() - 1]
                    host_raw = lowered[h:end]
                    j = host_raw.find(b"%3a")
                    if b"%" in (host_raw if j < 0 else host_raw[:j]):
                        found.append((s, end, form | _ENC_HOST))
                        p = lowered.find(_P_SL, end)
                        continue
            p = lowered.find(_P_SL, p + 1)
        return found

    def for_request(self, public_scheme: str, public_authority: str) -> HostRewriter:
        return HostRewriter(self, public_scheme.lower(), public_authority)


def _merge(a: list[tuple[int, int, int]], b: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Two sorted match lists as one, an overlapping later match dropped."""
    out: list[tuple[int, int, int]] = []
    for m in sorted(a + b):
        if not out or m[0] >= out[-1][1]:
            out.append(m)
    return out


def _pct_authority(authority: bytes, upper: bool) -> bytes:
    """``authority`` as it reads percent-encoded once (``:`` ``[`` ``]`` encoded)."""
    out = authority.replace(b":", b"%3A").replace(b"[", b"%5B").replace(b"]", b"%5D")
    return out if upper else out.replace(b"%3A", b"%3a").replace(b"%5B", b"%5b").replace(b"%5D", b"%5d")


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
        self._pub = pub
        self._sch = public_scheme.encode()
        sch = self._sch
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
        self._loop = matcher._loop
        self._forms_h = self._url_forms[0x68]
        self._forms_sl = self._url_forms[0x2F]
        self._forms_bs = self._url_forms[0x5C]
        # ``rewrite_url_bytes``' common case, a lower-case value ``https://<origin host>/...`` (or
        # ``http://``, ``//``): (that prefix up to the ``/``, its replacement), each kept only when the
        # general path gives the same on a probe. The path's decision depends on the bytes after the
        # host only through the boundary (here ``/``) and a later reference, which is checked per value.
        self._url_fast: tuple[tuple[bytes, bytes], ...] = ()
        fast: list[tuple[bytes, bytes]] = []
        for i, (prefix, _) in enumerate(_PREFIXES):
            if prefix in (b"https://", b"http://", b"//"):
                key = prefix + self.needle + b"/"
                if self.rewrite_url_bytes(key + b"p") == self.replacements[i] + b"/p":
                    fast.append((key, self.replacements[i]))
        self._url_fast = tuple(fast)

    def replacement(self, buf: bytes, start: int, end: int, form: int) -> bytes:
        """What ``buf[start:end]``, matched as ``form``, becomes."""
        if form == -1 or 0 <= form < 6:
            return self.replacements[form]
        raw = buf[start:end]
        if form & _ENC_HOST:
            return self._encoded_host(raw, form & 15)
        low = raw.lower()
        pct = form == _BARE_PCT or bool(form & _DYNAMIC)
        base = form & 15
        pub = self._pub
        if pct:
            j = low.rfind(b"%3a")
            pub = _pct_authority(pub, raw[j + 2 : j + 3] == b"A")
        if base == _BARE_PCT:
            return pub
        if base in (_P_HTTPS, _P_HTTP, _P_SLASHES):
            k = low.find(_P_SL) + len(_P_SL)
            head = raw[:k]
            if base != _P_SLASHES:
                head = self._sch + head[head.find(b"%") :]
            return head + (pub if pct else _pct_authority(pub, head[-1:] == b"F"))
        if base in (_U_HTTPS, _U_HTTP, _U_SLASHES):
            k = low.find(_U_SL) + len(_U_SL)
            head = raw[:k]
            if base != _U_SLASHES:
                head = self._sch + head[head.find(b":") :]
            return head + pub
        whole = self.replacements[base]
        return whole[: len(whole) - len(self._pub)] + pub

    def _encoded_host(self, raw: bytes, base: int) -> bytes:
        """The public reference for a ``%2F%2F`` form whose host was percent-encoded: the prefix as
        it was (scheme the client's), the public authority with the same characters encoded, in the
        same hex case (``origin%2Eexample`` -> ``pub%2Eexample``)."""
        low = raw.lower()
        k = low.find(_P_SL) + len(_P_SL)
        head = raw[:k]
        if base != _P_SLASHES:
            head = self._sch + head[head.find(b"%") :]
        host = raw[k:]
        encoded = {int(m.group(1), 16) for m in _ESC1.finditer(host.lower())}
        letters = [m.group(1) for m in re.finditer(rb"%([0-9A-Fa-f]{2})", host) if not m.group(1).isdigit()]
        upper = (letters[0] if letters else head[-1:]) == (letters[0] if letters else head[-1:]).upper()
        encoded.update(b":[]")
        fmt = b"%%%02X" if upper else b"%%%02x"
        out = bytearray()
        for c in self._pub:
            if c in encoded or (c | 0x20 in encoded and 0x61 <= c | 0x20 <= 0x7A):
                out += fmt % c
            else:
                out.append(c)
        return head + bytes(out)

    def splice(self, buf: bytes, start: int, limit: int, escapes: bool = True) -> tuple[list[bytes], int]:
        """Rewritten pieces of ``buf[start:]`` up to the end of the last match found; and that end."""
        out: list[bytes] = []
        pos = start
        repl = self.replacements
        for m_start, m_end, form in self.matcher.matches(buf, start, limit, escapes):
            out.append(buf[pos:m_start])
            out.append(repl[form] if (0 <= form < 6 or form == -1) else self.replacement(buf, m_start, m_end, form))
            pos = m_end
        return out, pos

    def might_contain(self, data: bytes) -> bool:
        """Cheap pre-check: can ``data`` hold an origin reference at all?"""
        low = data.lower()
        if self.matcher.contains_needle(low):
            return True
        return _P_SL in low and bool(self.matcher._encoded_matches(low, 0, len(low)))

    def rewrite(self, data: bytes, escapes: bool = True) -> bytes:
        """Rewrite a complete buffer (no chunk boundary inside); ``escapes``: see ``matches``."""
        out, pos = self.splice(data, 0, len(data), escapes)
        if not out:
            return data
        out.append(data[pos:])
        return b"".join(out)

    def rewrite_text(self, value: str) -> str:
        """Rewrite a decoded string (an attribute value, a JSON string, a text node...)."""
        raw = value.encode("utf-8", "surrogatepass")
        new = self.rewrite(raw, False)
        return value if new is raw else new.decode("utf-8", "surrogatepass")

    def rewrite_url(self, value: str) -> str:
        """Rewrite one URL value (an attribute): its start as the browser's URL parser reads it
        (``https://O``, ``//O``, ``HTTPS:\\\\O.``, ``//%6Frigin``...; relative URLs and other hosts
        are left alone), and every origin reference inside the rest (query values...)."""
        head = browser_url_start(self, value)
        if head is None:
            return self.rewrite_text(value)
        new_head, k = head
        rest = value[k:]
        return new_head + (self.rewrite_text(rest) if rest else rest)

    def rewrite_url_bytes(self, value: bytes) -> bytes | None:
        """``rewrite_url`` on a raw UTF-8 value: the same result, encoded, without decoding.

        Returns ``value`` itself when nothing changes and ``None`` when only the ``str`` version can
        decide (the value holds an origin host anywhere but in a plain prefix form at its start,
        or begins with a character ``str.lstrip`` strips but ``bytes.lstrip`` does not).
        """
        for key, rep in self._url_fast:
            if value.startswith(key):
                e = len(key) - 1
                if value.islower() and self.matcher.find_needle(value, e) < 0:
                    return rep + value[e:]
                break
        stripped = value.lstrip(_ASCII_SPACE)
        if not stripped:
            return value
        c = stripped[0]
        if c not in _URL_FIRST_B:
            if 0x1C <= c <= 0x1F or c >= 0x80:
                return None
            return None if self.might_contain(value) else value
        low = stripped.lower()
        matcher = self.matcher
        for form, prefix in self._url_forms[c]:
            if low.startswith(prefix):
                k = len(prefix)
                if matcher.find_needle(low, 0, k + len(self.needle) - 1) >= 0:
                    return None
                m = self.pattern.match(low, k)
                if m is None or matcher.find_needle(low, m.end()) >= 0:
                    return None
                e = m.end()
                if low.find(b"%3a", k, e) >= 0:
                    return None
                return value[: len(value) - len(stripped)] + self.replacements[form] + stripped[e:]
        # a host spelled with escapes (``//%6Frigin...``) or named later in the value: str path
        if matcher.contains_needle(low) or b"%" in low or b"\t" in low or b"\n" in low or b"\r" in low:
            return None
        return value

    def url_span(self, buf: bytes, low: bytes, s: int, e: int) -> tuple[int, int, int]:
        """``rewrite_url_bytes`` on the URL value ``buf[s:e]`` (``low`` = ``buf.lower()``, or a
        lower-cased buffer at the same offsets), answered as a splice without slicing: ``(form,
        a, b)`` when it would replace ``buf[a:b]`` with ``replacements[form]``; ``(-1, 0, 0)`` when
        it would return the value unchanged; ``(-2, 0, 0)`` when it would return ``None`` or take
        its slow path. For byte-level callers (the HTML rewriter's raw-tag hook): byte loops,
        compiled, cost less than the slices, ``lower`` and method calls they replace."""
        p = s
        while p < e and (is_ws(buf[p]) or buf[p] == 0x0B):  # what ``bytes.lstrip()`` strips
            p += 1
        if p >= e:
            return -1, 0, 0
        needle = self.needle
        c = buf[p]
        # the prefix forms by first byte, without a dict lookup (``_url_forms``)
        forms = self._forms_h if c == 0x68 or c == 0x48 else self._forms_sl if c == 0x2F else (
            self._forms_bs if c == 0x5C else None)
        if forms is None:
            if 0x1C <= c <= 0x1F or c >= 0x80 or find_bytes(low, needle, p, e) >= 0:
                return -2, 0, 0
            return -1, 0, 0
        lend = min(e, p + self.hold)
        for form, prefix in forms:
            k = len(prefix)
            if p + k > lend:
                continue
            i = 0
            while i < k and low[p + i] == prefix[i]:
                i += 1
            if i < k:
                continue
            if find_bytes(low, needle, p, min(lend, p + k + len(needle) - 1)) >= 0:
                return -2, 0, 0
            loop = self._loop
            me = loop.match_end(low, p + k, lend) if loop is not None else self.matcher.match_end(low, p + k, lend)
            if me < 0:
                return -2, 0, 0  # the needle is in the value (or it would not be here): str path
            # another reference later in the value, or a %3A port: the str path decides
            if find_bytes(low, needle, me, e) >= 0 or find_bytes(low, b"%3a", p + k, me) >= 0:
                return -2, 0, 0
            return form, p, me
        if find_bytes(low, needle, p, e) >= 0:
            return -2, 0, 0
        for j in range(p, e):  # a ``%``, tab, LF or CR: a URL only the browser's reading decides
            c = buf[j]
            if c == 0x25 or c == 0x09 or c == 0x0A or c == 0x0D:
                return -2, 0, 0
        return -1, 0, 0

    def _rewrite_url_slow(self, value: bytes, stripped: bytes) -> bytes:
        new = self.rewrite_url(value.decode("utf-8", "surrogatepass"))
        return new.encode("utf-8", "surrogatepass")
