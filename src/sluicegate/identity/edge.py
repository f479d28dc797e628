"""The edge ID, its cookie, and the per-request hook the publisher proxy calls.

ID = ``hex(HMAC-SHA256(secret, normalised client IP))`` + ``.`` + 6 random ``[A-Za-z0-9]``; IPv4
as is, IPv6 by its /64 prefix (16 lower-case hex digits). The client IP is the one the publisher's
trusted-proxy logic settled on (``ClientFacts.ip``), never a header. The ID is read only from its
cookie and only when it has exactly that shape. The cookie (``Secure; HttpOnly; SameSite=Lax;
Path=/``) is set in the response head, for document navigations only, only when the decision table
allows it; that response is made ``Cache-Control: private``. An explicit withdrawal expires it.
The forward header to the origin is always stripped from the client's request and set only when
consent allows at that moment.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import string
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from sluicegate.config.firstparty import IdentitySettings
from sluicegate.config.secrets import SecretError, check_keys
from sluicegate.identity.consent import decode_gpp, decode_tcf, decode_usp, parse_sid
from sluicegate.identity.decision import Decision, Jurisdiction, Signals, decide, jurisdiction

SECRET_ENV = "SLUICEGATE_IDENTITY_SECRET"
_ID = re.compile(r"^[0-9a-f]{64}\.[A-Za-z0-9]{6}$")
_ALNUM = string.ascii_letters + string.digits
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _suffix() -> str:
    """6 characters uniformly from [A-Za-z0-9]: random bytes below 248 (= 4 x 62) taken mod 62."""
    out = ""
    while len(out) < 6:
        out += "".join(_ALNUM[b % 62] for b in secrets.token_bytes(12) if b < 248)
    return out[:6]


def load_secret(secret_file: str, env: dict[str, str] | None = None) -> bytes:
    environ = os.environ if env is None else env
    if secret_file:
        try:
            value = Path(secret_file).read_text().strip()
        except OSError as exc:
            raise SecretError(f"identity.secret_file: cannot read {secret_file}: {exc.strerror}") from None
        return check_keys([value], "identity.secret_file")[0]
    value = environ.get(SECRET_ENV, "").strip()
    if not value:
        raise SecretError(f"[identity] needs a secret: set {SECRET_ENV} or identity.secret_file")
    return check_keys([value], SECRET_ENV)[0]


def normalise_ip(ip: str) -> str | None:
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return addr.packed[:8].hex()
    return str(addr)


def valid_id(value: str) -> bool:
    return bool(_ID.match(value))


def cookie_value(headers: list[tuple[str, str]], name: str) -> str | None:
    """The first ``name=`` in the Cookie headers (no full parse: one find per header)."""
    key = name + "="
    for k, v in headers:
        if k.lower() != "cookie" or key not in v:
            continue
        for part in v.split(";"):
            part = part.strip()
            if part.startswith(key):
                return part[len(key) :].strip().strip('"')
    return None


def _cookies(headers: list[tuple[str, str]], names: frozenset[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in headers:
        if k.lower() != "cookie":
            continue
        for part in v.split(";"):
            name, eq, value = part.strip().partition("=")
            if eq and name in names and name not in out:
                out[name] = value.strip().strip('"')
    return out


_CONSENT_COOKIES = frozenset({"euconsent-v2", "__gpp", "__gpp_sid", "us_privacy"})


def is_navigation(headers: list[tuple[str, str]]) -> bool:
    dest = None
    accept = ""
    for k, v in headers:
        lk = k.lower()
        if lk == "sec-fetch-dest":
            dest = v.strip().lower()
        elif lk == "accept":
            accept = v
    if dest is not None:
        return dest == "document"
    return "text/html" in accept.lower()


class EdgeIdentity:
    def __init__(self, settings: IdentitySettings, secret: bytes) -> None:
        self.settings = settings
        self.secret = secret
        self.gdpr = frozenset(settings.gdpr_countries)
        self.us_states = frozenset(settings.us_privacy_states)
        self.cookie = settings.cookie_name
        attrs = "; Path=/; Secure; HttpOnly; SameSite=Lax"
        if settings.cookie_domain:
            attrs += f"; Domain={settings.cookie_domain}"
        self._set_tail = f"; Max-Age={int(settings.max_age)}{attrs}"
        self._expire = f"{self.cookie}=; Max-Age=0{attrs}"
        self._digests: dict[str, str] = {}

    @classmethod
    def from_settings(cls, settings: IdentitySettings) -> EdgeIdentity:
        return cls(settings, load_secret(settings.secret_file))

    # -- pieces ------------------------------------------------------------------------------------

    def mint(self, client_ip: str) -> str | None:
        digest = self._digests.get(client_ip)
        if digest is None:
            norm = normalise_ip(client_ip)
            if norm is None:
                return None
            digest = hmac.new(self.secret, norm.encode(), hashlib.sha256).hexdigest()
            if len(self._digests) >= 4096:  # bounded: one entry per recent client address
                self._digests.clear()
            self._digests[client_ip] = digest
        return digest + "." + _suffix()

    def signals(self, headers: list[tuple[str, str]]) -> Signals:
        cookies = _cookies(headers, _CONSENT_COOKIES)
        cap = self.settings.max_cookie_bytes
        tcf = cookies.get("euconsent-v2")
        gpp = cookies.get("__gpp")
        usp = cookies.get("us_privacy")
        sid = cookies.get("__gpp_sid")
        gpp_s = decode_gpp(gpp) if gpp and len(gpp) <= cap else None
        if gpp_s is not None and sid and len(sid) <= 256:
            gpp_s = gpp_s.applicable(parse_sid(sid))
        gpc = any(k.lower() == "sec-gpc" and v.strip() == "1" for k, v in headers)
        return Signals(
            decode_tcf(tcf) if tcf and len(tcf) <= cap else None,
            gpp_s,
            decode_usp(usp) if usp and len(usp) <= 16 else None,
            gpc,
        )

    def jurisdiction(self, headers: list[tuple[str, str]], trusted_peer: bool) -> Jurisdiction:
        s = self.settings
        if not trusted_peer or not s.geo_country_header:
            return Jurisdiction.UNKNOWN
        country = region = ""
        for k, v in headers:
            lk = k.lower()
            if lk == s.geo_country_header:
                country = v
            elif s.geo_region_header and lk == s.geo_region_header:
                region = v
        return jurisdiction(country, region, self.gdpr, self.us_states)

    def decision(self, headers: list[tuple[str, str]], trusted_peer: bool) -> Decision:
        return decide(self.jurisdiction(headers, trusted_peer), self.signals(headers))

    def current_id(self, headers: list[tuple[str, str]], client_ip: str, trusted_peer: bool) -> str | None:
        """The visitor's ID from its cookie, if it is well-formed and consent allows using it now."""
        value = cookie_value(headers, self.cookie)
        if value is None or not valid_id(value):
            return None
        return value if self.decision(headers, trusted_peer).allow else None

    # -- the publisher hook ------------------------------------------------------------------------

    def begin(self, headers: list[tuple[str, str]], client_ip: str, trusted_peer: bool) -> EdgeRequest | None:
        """What identity does for this request; None when it has nothing to do (the common case
        for subresources: not a navigation, no forward header, no ID cookie)."""
        nav = is_navigation(headers)
        existing = cookie_value(headers, self.cookie)
        forward = self.settings.forward_header
        if not nav and existing is None and not forward:
            return None
        if existing is not None and not valid_id(existing):
            existing = None
        d = self.decision(headers, trusted_peer)
        set_cookie: str | None = None
        edge_id: str | None = None
        if d.allow:
            edge_id = existing
            if existing is None and nav:
                edge_id = self.mint(client_ip)
                if edge_id is not None:
                    set_cookie = f"{self.cookie}={edge_id}{self._set_tail}"
        elif d.withdrawal and cookie_value(headers, self.cookie) is not None:
            set_cookie = self._expire
        return EdgeRequest(self, edge_id, set_cookie)


def _private(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    directives: list[bytes] = []
    out = []
    for k, v in headers:
        if k.lower() == b"cache-control":
            directives += [d.strip() for d in v.split(b",") if d.strip()]
        else:
            out.append((k, v))
    kept = [d for d in directives if d.split(b"=", 1)[0].strip().lower() not in (b"public", b"s-maxage", b"private")]
    out.append((b"cache-control", b", ".join([b"private", *kept])))
    return out


class EdgeRequest:
    __slots__ = ("edge_id", "identity", "set_cookie")

    def __init__(self, identity: EdgeIdentity, edge_id: str | None, set_cookie: str | None) -> None:
        self.identity = identity
        self.edge_id = edge_id
        self.set_cookie = set_cookie

    def upstream(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        name = self.identity.settings.forward_header
        if not name:
            return headers
        out = [(k, v) for k, v in headers if k.lower() != name]
        if self.edge_id is not None:
            out.append((name, self.edge_id))
        return out

    def wrap(self, send: Send) -> Send:
        """``send`` with the cookie added to the response head (before any body byte)."""
        cookie = self.set_cookie
        if cookie is None:
            return send
        value = cookie.encode("latin-1")

        async def wrapped(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start" and message.get("status", 500) < 500:
                headers = _private(list(message.get("headers", ())))
                headers.append((b"set-cookie", value))
                message = {**message, "headers": headers}
            await send(message)

        return wrapped


def strip_forward_header(headers: list[tuple[str, str]], name: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() != name] if name else headers


__all__ = ["EdgeIdentity", "EdgeRequest", "Jurisdiction", "load_secret", "normalise_ip", "valid_id"]
