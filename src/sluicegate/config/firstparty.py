"""``[first_party]`` and ``[identity]``: signed first-party URLs and consent-gated edge identity.

Only the shape of the settings lives here. Secrets (signing keys, the identity secret) are never
TOML values: they come from ``SLUICEGATE_FIRST_PARTY_KEYS`` / ``keys_file`` and
``SLUICEGATE_IDENTITY_SECRET`` / ``secret_file``, read and checked at start-up by
``firstparty.signing.load_keys`` and ``identity.edge.load_secret``.
"""

from __future__ import annotations

import ipaddress
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sluicegate.config.domains import DomainList
from sluicegate.config.types import CidrList, Duration

_FROZEN = ConfigDict(extra="forbid", frozen=True)
_DOMAIN = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_COOKIE_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


def _domains(value: list[str]) -> list[str]:
    out = []
    for d in value:
        low = d.strip().lower().rstrip(".")
        if not _DOMAIN.match(low) or low.count(".") < (2 if low.startswith("*.") else 0):
            raise ValueError(f"not a host name or '*.suffix' pattern: {d!r}")
        out.append(low)
    return out


class FirstPartySettings(BaseModel):
    model_config = _FROZEN

    enabled: bool = False
    path_prefix: str = "/first-party"
    # Hosts the proxy/click/sign endpoints serve: "cdn.example.com" exactly, or "*.example.com"
    # (the apex and any subdomain at a dot boundary). Empty: the endpoints are off (never open).
    allowed_domains: list[str] = Field(default_factory=list)
    # Third-party hosts whose URLs in publisher pages become signed first-party URLs (each must
    # also be covered by allowed_domains).
    rewrite_domains: list[str] = Field(default_factory=list)
    # CIDRs a target may resolve to despite the private-address guard (empty: none).
    allow_private_addresses: CidrList = Field(default_factory=list)
    # Lifetime of a minted URL (pages and /sign). A string such as "1h" or seconds.
    url_ttl: Duration = Field(default=3600.0, gt=0)
    keys_file: str = ""  # file with one signing key per line (first signs); else SLUICEGATE_FIRST_PARTY_KEYS
    # Static name -> address answers used instead of DNS (like curl --resolve); still SSRF-checked.
    resolve: dict[str, str] = Field(default_factory=dict)
    max_redirects: int = Field(default=4, ge=0, le=4)
    # Bytes of a proxied CSS body held while a url( token is incomplete; over it the text passes.
    max_css_token_bytes: int = Field(default=8192, ge=256, le=1024 * 1024)
    max_url_bytes: int = Field(default=8192, ge=256, le=65536)  # a target longer than this is refused (400)
    # Pooled third-party connections per worker (all targets together) and idle pools kept.
    max_connections: int = Field(default=256, ge=1, le=65536)
    max_pools: int = Field(default=64, ge=1, le=4096)

    @field_validator("path_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.rstrip("/")
        if not value.startswith("/") or len(value) < 2 or any(c in value for c in "?#% \t") or value.startswith(
            "/_sluicegate"
        ):
            raise ValueError(f"must be a path like \"/first-party\" (not under /_sluicegate): {value!r}")
        return value

    @field_validator("allowed_domains", "rewrite_domains")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        return _domains(value)

    @field_validator("resolve")
    @classmethod
    def _resolve(cls, value: dict[str, str]) -> dict[str, str]:
        out = {}
        for name, addr in value.items():
            try:
                ipaddress.ip_address(addr)
            except ValueError as exc:
                raise ValueError(f"{name}: not an IP address: {addr!r}") from exc
            out[name.lower().rstrip(".")] = addr
        return out

    @model_validator(mode="after")
    def _rewrite_within_allowed(self) -> FirstPartySettings:
        allowed = DomainList(self.allowed_domains)
        for d in self.rewrite_domains:
            if not allowed.covers_pattern(d):
                raise ValueError(f"rewrite_domains: {d!r} is not covered by allowed_domains")
        return self


class IdentitySettings(BaseModel):
    model_config = _FROZEN

    enabled: bool = False
    cookie_name: str = "sg_id"
    cookie_domain: str = ""  # empty: a host-only cookie
    max_age: Duration = Field(default=365 * 86400.0, gt=0)
    # Headers set by the trusted CDN in front (only believed from [server] trusted_proxies peers).
    geo_country_header: str = ""
    geo_region_header: str = ""
    forward_header: str = ""  # header carrying the ID to the origin (empty: not forwarded)
    secret_file: str = ""  # else SLUICEGATE_IDENTITY_SECRET
    # Jurisdictions (ISO 3166-1 alpha-2; US state codes) — the decision table's inputs.
    gdpr_countries: list[str] = Field(
        default_factory=lambda: [
            "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
            "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO", "GB",
        ]
    )
    us_privacy_states: list[str] = Field(
        default_factory=lambda: [
            "CA", "VA", "CO", "CT", "UT", "MT", "OR", "TX", "FL", "DE", "IA", "NE", "NH", "NJ", "TN", "MN",
            "MD", "IN", "KY", "RI",
        ]
    )
    max_cookie_bytes: int = Field(default=16384, ge=256, le=65536)  # a consent cookie longer is treated as absent

    @field_validator("cookie_name")
    @classmethod
    def _cookie(cls, value: str) -> str:
        if not _COOKIE_NAME.match(value):
            raise ValueError(f"not a cookie name: {value!r}")
        return value

    @field_validator("cookie_domain")
    @classmethod
    def _cdomain(cls, value: str) -> str:
        v = value.strip().lower().lstrip(".")
        if v and not _DOMAIN.match(v):
            raise ValueError(f"not a domain: {value!r}")
        return v

    @field_validator("geo_country_header", "geo_region_header", "forward_header")
    @classmethod
    def _header(cls, value: str) -> str:
        if value and not _HEADER.match(value):
            raise ValueError(f"not a header name: {value!r}")
        return value.lower()

    @field_validator("gdpr_countries", "us_privacy_states")
    @classmethod
    def _codes(cls, value: list[str]) -> list[str]:
        return [v.strip().upper() for v in value]
