"""The one typed settings model. Loaded and validated once at start-up (see ``loader``)."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sluicegate.config.flight import FlightSettings
from sluicegate.config.html import HtmlSettings
from sluicegate.config.inference import InferenceSettings
from sluicegate.pipeline.hosts import Authority, Origin

_FROZEN = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(BaseModel):
    model_config = _FROZEN

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=256)
    # CIDRs whose Forwarded / X-Forwarded-* headers are believed. Everyone else's are dropped.
    trusted_proxies: list[str] = Field(default_factory=list)
    access_log: bool = False

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ValueError(f"not a CIDR: {cidr!r}") from exc
        return value


class PublisherSettings(BaseModel):
    model_config = _FROZEN

    enabled: bool = True
    origin_url: str = "http://127.0.0.1:9000"
    # Host values the proxy serves; others get 421. "*" accepts any (development only).
    public_hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1:8080"])
    origin_host_header: str = ""  # optional Host sent to the origin instead of the origin's own
    mode: Literal["stream", "buffered"] = "stream"  # "buffered" exists only for A/B comparisons
    verify_tls: bool = True
    # Other authorities of the same site (www/apex, internal names, a CDN host): rewritten exactly
    # like origin_url's authority. origin_host_header's value is added automatically.
    origin_aliases: list[str] = Field(default_factory=list)

    @field_validator("origin_aliases")
    @classmethod
    def _aliases(cls, value: list[str]) -> list[str]:
        for alias in value:
            Authority.parse(alias)
        return value

    @field_validator("origin_url")
    @classmethod
    def _origin(cls, value: str) -> str:
        Origin.parse(value)
        return value

    @field_validator("public_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one public host is needed (or '*' for development)")
        for host in value:
            if host != "*" and (not host or any(c in host for c in "/ \t@")):
                raise ValueError(f"not a host[:port]: {host!r}")
        return [h.lower() for h in value]

    @property
    def origin(self) -> Origin:
        return Origin.parse(self.origin_url)

    @property
    def all_origin_aliases(self) -> list[str]:
        """``origin_aliases`` plus the ``origin_host_header`` value when it names another authority."""
        out = list(self.origin_aliases)
        if self.origin_host_header:
            try:
                Authority.parse(self.origin_host_header)
            except ValueError:
                return out
            out.append(self.origin_host_header)
        return out


class LimitsSettings(BaseModel):
    model_config = _FROZEN

    # Per response, when rewriting: decoded bytes allowed out of a decoder (decompression-bomb guard).
    max_decoded_body_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    # Whole body held in mode = "buffered" (A/B comparison only).
    max_buffered_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    # Request head: total bytes of request headers accepted from a client.
    max_request_header_bytes: int = Field(default=64 * 1024, ge=1024)
    # Origin response head (status line + headers); over it -> 502.
    max_origin_head_bytes: int = Field(default=64 * 1024, ge=1024)
    # Origin body bytes buffered per response before reading from the origin pauses (backpressure).
    origin_read_buffer_bytes: int = Field(default=256 * 1024, ge=4096)
    # Origin connections per worker process (in use + idle); requests over it wait for one.
    max_origin_connections: int = Field(default=512, ge=1, le=65536)


class TimeoutsSettings(BaseModel):
    model_config = _FROZEN

    connect: float = Field(default=5.0, gt=0)
    first_byte: float = Field(default=30.0, gt=0)  # request sent -> response headers
    idle: float = Field(default=60.0, gt=0)  # between upstream body bytes
    origin_keepalive: float = Field(default=30.0, gt=0)  # an idle kept-alive origin connection is closed after


class CompressionSettings(BaseModel):
    """Re-encoding levels on the Stream path. Re-encoding is the largest CPU cost per rewritten page
    after the rewrite itself, so the defaults are fast levels (docs/stack.md has the measurements)."""

    model_config = _FROZEN

    gzip_level: int = Field(default=3, ge=1, le=9)
    brotli_quality: int = Field(default=3, ge=0, le=11)
    zstd_level: int = Field(default=3, ge=1, le=19)


class Settings(BaseModel):
    model_config = _FROZEN

    server: ServerSettings = ServerSettings()
    publisher: PublisherSettings = PublisherSettings()
    limits: LimitsSettings = LimitsSettings()
    timeouts: TimeoutsSettings = TimeoutsSettings()
    compression: CompressionSettings = CompressionSettings()
    html: HtmlSettings = HtmlSettings()
    flight: FlightSettings = FlightSettings()
    inference: InferenceSettings = InferenceSettings()

    @model_validator(mode="after")
    def _never_an_open_gateway(self) -> Settings:
        inf = self.inference
        serves_inference = bool(inf.listen_hosts or inf.path_prefix)
        real = [p.name for p in inf.providers if p.kind != "mock"]
        if (serves_inference and real and not inf.client_keys_env and not inf.allow_unauthenticated
                and not _is_loopback(self.server.host)):
            raise ValueError(
                f"inference: providers {', '.join(real)} would be open to anyone on {self.server.host}: set "
                "inference.client_keys_env (or inference.allow_unauthenticated = true to accept that)"
            )
        return self


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
