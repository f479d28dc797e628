"""Signed first-party URLs: the format, minting and verification (stdlib ``hmac``, sans-IO).

Format (docs/first-party.md has it for other services)::

    {prefix}/{kind}?url=<percent-encoded canonical target>&exp=<unix seconds>&sig=<token>

    token = base64url_nopad(HMAC-SHA256(key, "sg1\\n" + kind + "\\n" + exp + "\\n" + canonical))

``kind`` is ``proxy`` or ``click`` (a token for one is not valid for the other). The canonical
target is the WHATWG-style normal form made by ``canonical_url``: scheme and host lower-cased,
default port dropped, empty path -> ``/``, characters a URL may not hold percent-encoded (escapes
upper-cased), query pairs kept in their order with each key and value re-encoded the
``application/x-www-form-urlencoded`` way, the fragment dropped. Verification re-canonicalises
the ``url`` parameter, so any tampering with it changes what is verified.

Keys: a list, the first signs, every one verifies (rotation). Each is >= 32 bytes and never a
documentation placeholder; they come from ``SLUICEGATE_FIRST_PARTY_KEYS`` (comma-separated) or
``keys_file`` (one per line), never from the TOML. Nothing here logs a key or a token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote_plus, urlsplit

from sluicegate.config.secrets import SecretError, check_keys

KEYS_ENV = "SLUICEGATE_FIRST_PARTY_KEYS"
KINDS = ("proxy", "click")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ESCAPE = re.compile(r"%([0-9a-fA-F]{2})")
_HOST = re.compile(r"^(?:[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)(?:\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$|^\[[0-9a-f:.]+\]$")
class BadUrl(Exception):
    """A signed URL or target that cannot be used; ``status`` 400 (malformed) or 403 (not valid)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Target:
    """A canonical target: ``url`` plus its parts for connecting."""

    url: str
    scheme: str
    host: str  # lower-case, IPv6 in brackets
    port: int
    path_query: str  # what goes on the request line

    @property
    def authority(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


def _norm_escapes(text: str) -> str:
    return _ESCAPE.sub(lambda m: "%" + m.group(1).upper(), text)


def _form(text: str) -> str:
    return quote_plus(unquote_plus(text), safe="*-._")


def canonical_url(raw: str, max_bytes: int = 8192) -> Target:
    """The canonical form of an absolute http(s) URL; ``BadUrl(400)`` for anything else."""
    raw = raw.strip()
    if len(raw) > max_bytes:
        raise BadUrl(400, f"target URL longer than {max_bytes} bytes")
    if _CONTROL.search(raw):
        raise BadUrl(400, "target URL contains control characters")
    if raw.startswith("//"):
        raw = "https:" + raw
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise BadUrl(400, f"target URL does not parse: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BadUrl(400, f"only http and https targets are served, not {scheme or 'a relative URL'!r}")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise BadUrl(400, "target URL must not carry user information")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise BadUrl(400, "target URL has no host")
    try:
        host = host.encode("idna").decode("ascii").lower() if not host.isascii() else host.lower()
    except UnicodeError:
        raise BadUrl(400, "target host is not a valid internationalised name") from None
    if ":" in host:
        host = f"[{host}]"
    if not _HOST.match(host):
        raise BadUrl(400, "target host is not a host name or IP address")
    default = 443 if scheme == "https" else 80
    if port is None:
        port = default
    if port == 0:
        raise BadUrl(400, "target port 0")
    authority = host if port == default else f"{host}:{port}"
    path = _norm_escapes(quote(parts.path or "/", safe=_PATH_SAFE))
    if not path.startswith("/"):
        path = "/" + path
    query = ""
    if parts.query:
        pairs = []
        for piece in parts.query.split("&"):
            if not piece:
                continue
            key, eq, value = piece.partition("=")
            pairs.append(_form(key) + ("=" + _form(value) if eq else ""))
        query = "&".join(pairs)
    path_query = path + ("?" + query if query else "")
    return Target(f"{scheme}://{authority}{path_query}", scheme, host, port, path_query)


def with_param(target: Target, name: str, value: str) -> Target:
    """``target`` with query parameter ``name`` set to ``value`` (an existing one replaced)."""
    base, _, query = target.url.partition("?")
    key = _form(name)
    pairs = [p for p in query.split("&") if p and p.partition("=")[0] != key]
    pairs.append(f"{key}={_form(value)}")
    return canonical_url(base + "?" + "&".join(pairs), max_bytes=1 << 20)


def load_keys(keys_file: str, env: dict[str, str] | None = None) -> list[bytes]:
    """The signing keys: ``keys_file`` (one per line, ``#`` comments) if set, else the env variable."""
    environ = os.environ if env is None else env
    if keys_file:
        try:
            text = Path(keys_file).read_text()
        except OSError as exc:
            raise SecretError(f"first_party.keys_file: cannot read {keys_file}: {exc.strerror}") from None
        keys = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        return check_keys(keys, "first_party.keys_file")
    raw = environ.get(KEYS_ENV, "")
    if not raw.strip():
        raise SecretError(f"[first_party] needs signing keys: set {KEYS_ENV} (comma-separated) or keys_file")
    return check_keys([k.strip() for k in raw.split(",") if k.strip()], KEYS_ENV)


def _mac(key: bytes, kind: str, exp: int, canonical: str) -> bytes:
    msg = f"sg1\n{kind}\n{exp}\n{canonical}".encode()
    return hmac.new(key, msg, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Signer:
    def __init__(
        self,
        keys: Sequence[bytes],
        prefix: str,
        ttl: float,
        max_url_bytes: int = 8192,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not keys:
            raise SecretError("no signing key")
        self.keys = list(keys)
        self.prefix = prefix
        self.ttl = ttl
        self.max_url_bytes = max_url_bytes
        self.clock = clock

    def token(self, kind: str, exp: int, canonical: str) -> str:
        return _b64(_mac(self.keys[0], kind, exp, canonical))

    def expiry(self, now: float | None = None, ttl: float | None = None) -> int:
        """``now + ttl`` rounded down to a sixteenth of the TTL: the same target minted within one such
        step gets the same URL (browser and CDN caches keep working, minting can be cached); the
        lifetime stays within (ttl - ttl/16, ttl]."""
        ttl = self.ttl if ttl is None else ttl
        step = max(1, int(ttl / 16))
        return int(((self.clock() if now is None else now) + ttl) // step * step)

    def mint(self, kind: str, target: Target, now: float | None = None, ttl: float | None = None) -> str:
        """Root-relative signed URL for ``target``."""
        exp = self.expiry(now, ttl)
        sig = self.token(kind, exp, target.url)
        return f"{self.prefix}/{kind}?url={quote(target.url, safe='')}&exp={exp}&sig={sig}"

    def verify(self, kind: str, query: str, now: float | None = None) -> Target:
        """The target of a signed URL's query string; ``BadUrl`` 400 (malformed) / 403 (invalid)."""
        params: dict[str, str] = {}
        for piece in query.split("&"):
            if not piece:
                continue
            name, eq, value = piece.partition("=")
            if name not in ("url", "exp", "sig"):
                raise BadUrl(400, f"unexpected parameter {name[:40]!r} in a signed URL")
            if name in params:
                raise BadUrl(400, f"parameter {name!r} given twice")
            if not eq:
                raise BadUrl(400, f"parameter {name!r} has no value")
            params[name] = unquote_plus(value)
        missing = [n for n in ("url", "exp", "sig") if n not in params]
        if missing:
            raise BadUrl(400, f"signed URL lacks {', '.join(missing)}")
        exp_s, sig = params["exp"], params["sig"]
        if not exp_s.isdigit() or len(exp_s) > 12:
            raise BadUrl(400, "exp is not a unix time in seconds")
        if not _TOKEN.match(sig):
            raise BadUrl(400, "sig is not a 43-character base64url token")
        target = canonical_url(params["url"], self.max_url_bytes)
        exp = int(exp_s)
        given = sig.encode()
        ok = False
        for key in self.keys:  # every key is tried: time does not tell which one matched
            ok |= hmac.compare_digest(_b64(_mac(key, kind, exp, target.url)).encode(), given)
        if not ok:
            raise BadUrl(403, "signature does not match (tampered URL or unknown key)")
        if exp < (self.clock() if now is None else now):
            raise BadUrl(403, f"signed URL expired at {exp} (unix seconds)")
        return target
