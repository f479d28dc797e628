"""The origin a publisher face serves, and the authorities that name it: parsed once, from the config.

``Origin`` is ``origin_url`` (scheme, host, port; nothing else allowed), ``Authority`` one
``host[:port]`` of ``origin_aliases`` / ``origin_host_header``. They live with the config because the
config validates them at load time (an error names file:line:key); the pipeline's matcher
(``pipeline.hosts``) takes them as its input. ``OriginUrl`` and ``AuthorityList`` are the config field
types that validate them (the publisher's origin and every page route's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator

_DEFAULT_PORTS = {"http": 80, "https": 443}


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


@dataclass(frozen=True)
class Authority:
    """One authority of the origin site: ``host`` (lower-case, IPv6 in brackets) and its port
    (None: none configured; then ``host``, ``host:80`` and ``host:443`` all name it)."""

    host: str
    port: int | None  # None: no port given (matches bare, :80 and :443)

    @classmethod
    def parse(cls, value: str) -> Authority:
        """``host``, ``host:port``, ``[v6]``, ``[v6]:port``; no scheme, path or credentials."""
        v = value.strip().lower()
        if "://" in v:
            v = v.split("://", 1)[1].rstrip("/")
        if not v or any(c in v for c in "/?#@ \t\\%"):
            raise ValueError(f"not a host[:port]: {value!r}")
        parts = urlsplit("//" + v)
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"bad port in {value!r}") from exc
        host = parts.hostname
        if not host:
            raise ValueError(f"no host in {value!r}")
        if ":" in host:
            host = f"[{host}]"
        return cls(host.rstrip("."), port)


def _origin_url(value: str) -> str:
    Origin.parse(value)
    return value


def _authorities(value: list[str]) -> list[str]:
    for authority in value:
        Authority.parse(authority)
    return value


OriginUrl = Annotated[str, AfterValidator(_origin_url)]
"""A config field holding an origin URL (``scheme://host[:port]``, nothing else)."""

AuthorityList = Annotated[list[str], AfterValidator(_authorities)]
"""A config field holding ``host[:port]`` authorities (origin aliases)."""
