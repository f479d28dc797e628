"""The one typed settings model. Loaded and validated once at start-up (see ``loader``)."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from sluicegate.config.access_log import check_template
from sluicegate.config.event_loop import EventLoopSettings
from sluicegate.config.firstparty import FirstPartySettings, IdentitySettings
from sluicegate.config.flight import FlightSettings
from sluicegate.config.html import HtmlSettings
from sluicegate.config.http2 import Http2Settings
from sluicegate.config.images import ImageOptimizerSettings, check_route_profile_sets
from sluicegate.config.inference import InferenceSettings
from sluicegate.config.origin import Authority, AuthorityList, Origin, OriginUrl
from sluicegate.config.routes import RouteSettings, check_table
from sluicegate.config.tls import TlsSettings
from sluicegate.config.types import CidrList, Duration, FieldProblem, ListenAddress
from sluicegate.config.websocket import WebSocketSettings

_FROZEN = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(BaseModel):
    model_config = _FROZEN

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=256)
    # true: a supervisor process runs the workers (restarts a crashed one, reloads with a new generation).
    # false: one process (containers): `serve` runs the app itself; workers must be 1 (docs/operations.md).
    supervisor: bool = True
    # CIDRs whose Forwarded / X-Forwarded-* headers are believed. Everyone else's are dropped.
    trusted_proxies: CidrList = Field(default_factory=list)
    # One line per request: "json", "off", or a template of $fields (docs/operations.md). "auto" (default):
    # JSON when stdout is not a terminal, the "combined" template when it is. true = "auto", false = "off".
    access_log: bool | str = "auto"
    request_id_header: str = "x-request-id"  # read from clients, sent to origins/providers and back, both faces
    # Whose incoming request id is kept (when valid: 1-128 of [A-Za-z0-9._:+=/-]): "any" client,
    # "trusted_proxies" only, or "none" (always a fresh id).
    request_id_trust: Literal["any", "trusted_proxies", "none"] = "any"
    # SIGTERM: stop accepting, let in-flight requests finish for this long, then abort them (exit code 1).
    shutdown_timeout: Duration = Field(default=30.0, ge=0, le=86400)
    tls_certfile: str = ""  # serve HTTPS on the public listener (PEM certificate chain); both or neither
    tls_keyfile: str = ""  # (older names of [server.tls] cert_file / key_file)
    tls: TlsSettings = TlsSettings()
    pid_file: str = ""  # the supervisor writes its pid here (for `sluicegate reload` and init systems)
    # HTTP/2 to clients (server/h2, bounds in [http2]): ALPN "h2" on TLS, h2c prior knowledge on cleartext.
    http2: bool = True
    # The HTTP/1.1 serving core of each worker: "native" (server/h1: asyncio/uvloop on httptools, head and
    # first body chunk in one write) or "uvicorn" (uvicorn's httptools protocol). Same app, same behaviour.
    http_core: Literal["native", "uvicorn"] = "native"

    @field_validator("access_log")
    @classmethod
    def _access_log(cls, value: bool | str) -> bool | str:
        if isinstance(value, str) and value not in ("auto", "json", "off", "combined"):
            check_template(value)
        return value

    @field_validator("request_id_header")
    @classmethod
    def _rid_header(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$", value) or value.lower() in (
            "host", "connection", "content-length", "transfer-encoding", "authorization", "cookie", "set-cookie"
        ):
            raise ValueError(f"not a usable header name: {value!r}")
        return value.lower()

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSettings:
        if bool(self.tls_certfile) != bool(self.tls_keyfile):
            missing = "tls_keyfile" if self.tls_certfile else "tls_certfile"
            raise FieldProblem((missing,), "tls_certfile and tls_keyfile go together")
        if self.tls_certfile and self.tls.cert_file:
            raise FieldProblem(("tls_certfile",), "set [server.tls] cert_file or tls_certfile, not both")
        if not self.supervisor and self.workers > 1:
            raise FieldProblem(("workers",), f"supervisor = false serves in one process: workers must be 1 "
                               f"(got {self.workers}); run more containers, or set supervisor = true")
        return self


class AdminSettings(BaseModel):
    """The admin listener (``/metrics``, ``/livez``, ``/readyz``, ``/status``), served by the supervisor."""

    model_config = _FROZEN

    listen: ListenAddress = "127.0.0.1:9901"  # "" = no admin listener
    # false: no per-request metrics and no cross-worker collection (/metrics answers 404); logs unaffected.
    metrics: bool = True
    probe_interval: Duration = Field(default=5.0, ge=0.05, le=3600)  # backend reachability probes (readiness)
    probe_timeout: Duration = Field(default=2.0, gt=0, le=60)


class PublisherSettings(BaseModel):
    model_config = _FROZEN

    enabled: bool = True
    origin_url: OriginUrl = "http://127.0.0.1:9000"
    # Host values the proxy serves; others get 421. "*" accepts any (development only).
    public_hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1:8080"])
    origin_host_header: str = ""  # optional Host sent to the origin instead of the origin's own
    # Only "stream": bodies always leave as they arrive. "buffered" (an A/B benchmark switch) is refused with
    # a pointer to where it went (sluicegate.dev.buffered, used by `sluicegate bench stream-ab`).
    mode: str = "stream"
    verify_tls: bool = True
    ca_file: str = ""  # PEM bundle the origin's certificate is verified against ("" = the system store)
    # Map what the browser sends back (query values, form bodies, Referer/Origin, cookie values) from
    # the public host to the origin's own (docs/round-trip.md). Off: the origin sees the public URLs.
    map_requests: bool = True
    # Other authorities of the same site (www/apex, internal names, a CDN host): rewritten exactly
    # like origin_url's authority. origin_host_header's value is added automatically.
    origin_aliases: AuthorityList = Field(default_factory=list)
    # WebSocket upgrades proxied to the origin (publisher/websocket.py; bounds in [websocket]). Off: 403.
    websocket: bool = True
    # [[publisher.routes]]: more backends by longest path prefix (config/routes.py, docs/routes.md);
    # origin_url above stays the fallback page route ("default").
    routes: list[RouteSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _route_table(self) -> PublisherSettings:
        check_table(self.routes, self.public_hosts)
        return self

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value == "buffered":
            raise ValueError(
                '"buffered" is no longer a proxy mode: bodies always stream. For the stream-vs-buffered '
                "comparison use `sluicegate bench stream-ab` (it runs the buffered side through "
                "sluicegate.dev.buffered)"
            )
        if value != "stream":
            raise ValueError(f'must be "stream", got {value!r}')
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

    # Per response, when rewriting: decoded bytes allowed out of a decoder (decompression-bomb guard and
    # the bound on CPU one response may take). Also accepted as ``max_decoded_bytes`` (issue 24's name).
    max_decoded_body_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1024, validation_alias=AliasChoices("max_decoded_body_bytes", "max_decoded_bytes")
    )
    # Per response, when rewriting: decoded bytes the rewriter may consume without emitting any output.
    max_decoded_bytes_without_output: int = Field(default=32 * 1024 * 1024, ge=64 * 1024)
    # A rewritten body whose whole origin bytes are in hand at the first read and decode to at most this
    # many bytes (and at most [event_loop] piece_bytes: one step of work) is transformed in one pass and
    # sent with a Content-Length, head and body in one write (publisher.oneshot). 0 = always stream.
    one_pass_body_bytes: int = Field(default=16 * 1024, ge=0, le=1024 * 1024)
    # Request head: total bytes of request headers accepted from a client.
    max_request_header_bytes: int = Field(default=64 * 1024, ge=1024)
    # Origin response head (status line + headers); over it -> 502.
    max_origin_head_bytes: int = Field(default=64 * 1024, ge=1024)
    # Origin body bytes buffered per response before reading from the origin pauses (backpressure).
    origin_read_buffer_bytes: int = Field(default=256 * 1024, ge=4096)
    # Origin connections per worker process (in use + idle); requests over it wait for one.
    max_origin_connections: int = Field(default=512, ge=1, le=65536)
    # Inbound mapping of form bodies: bytes read before the origin request is sent (a body that ends
    # within them gets an exact Content-Length; a longer one is streamed chunked), and the longest
    # unfinished field the mapper holds.
    request_map_hold_bytes: int = Field(default=64 * 1024, ge=1024)
    # Form body bytes mapped per request; the rest of a larger body streams through unmapped.
    map_request_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)

    @model_validator(mode="before")
    @classmethod
    def _one_name_for_the_decoded_cap(cls, data: object) -> object:
        if isinstance(data, dict) and "max_decoded_body_bytes" in data and "max_decoded_bytes" in data:
            raise ValueError("max_decoded_bytes is another name for max_decoded_body_bytes: set one of them")
        return data


class TimeoutsSettings(BaseModel):
    model_config = _FROZEN

    connect: Duration = Field(default=5.0, gt=0)
    first_byte: Duration = Field(default=30.0, gt=0)  # request sent -> response headers
    idle: Duration = Field(default=60.0, gt=0)  # between upstream body bytes
    origin_keepalive: Duration = Field(default=30.0, gt=0)  # an idle kept-alive origin connection is closed after
    # A client's request head (from connect, or a later request's first byte) must be complete within this.
    client_header: Duration = Field(default=20.0, gt=0, le=3600)
    # A kept-alive client connection with no request for this long is closed.
    client_keepalive: Duration = Field(default=30.0, gt=0, le=3600)


class CompressionSettings(BaseModel):
    """Re-encoding levels on the Stream path. Re-encoding is the largest CPU cost per rewritten page
    after the rewrite itself, so the defaults are fast levels (docs/stack.md has the measurements)."""

    model_config = _FROZEN

    gzip_level: int = Field(default=4, ge=1, le=9)  # 4 beats 3 on HTML: less CPU, smaller (bench codec-levels)
    brotli_quality: int = Field(default=3, ge=0, le=11)
    zstd_level: int = Field(default=3, ge=1, le=19)


class Settings(BaseModel):
    model_config = _FROZEN

    server: ServerSettings = ServerSettings()
    admin: AdminSettings = AdminSettings()
    publisher: PublisherSettings = PublisherSettings()
    limits: LimitsSettings = LimitsSettings()
    timeouts: TimeoutsSettings = TimeoutsSettings()
    compression: CompressionSettings = CompressionSettings()
    html: HtmlSettings = HtmlSettings()
    flight: FlightSettings = FlightSettings()
    inference: InferenceSettings = InferenceSettings()
    event_loop: EventLoopSettings = EventLoopSettings()
    first_party: FirstPartySettings = FirstPartySettings()
    identity: IdentitySettings = IdentitySettings()
    websocket: WebSocketSettings = WebSocketSettings()
    http2: Http2Settings = Http2Settings()
    image_optimizer: ImageOptimizerSettings = ImageOptimizerSettings()

    @model_validator(mode="after")
    def _never_an_open_gateway(self) -> Settings:
        inf = self.inference
        serves_inference = bool(inf.listen_hosts or inf.path_prefix)
        real = [p.name for p in inf.providers if p.kind != "mock"]
        if (serves_inference and real and not inf.client_keys_env and not inf.allow_unauthenticated
                and not inf.require_keys
                and not _is_loopback(self.server.host)):
            raise FieldProblem(
                ("inference", "client_keys_env"),
                f"providers {', '.join(real)} would be open to anyone on {self.server.host}: set "
                "inference.client_keys_env (or inference.allow_unauthenticated = true to accept that)"
            )
        admin = self.admin.listen
        if admin and admin.rpartition(":")[2] == str(self.server.port) and self.server.port != 0:
            host = admin.rpartition(":")[0].strip("[]")
            if host in (self.server.host, "0.0.0.0", "::") or self.server.host in ("0.0.0.0", "::"):
                raise FieldProblem(("admin", "listen"), "the admin listener must not share the public port")
        check_route_profile_sets(self.publisher.routes, self.image_optimizer)
        return self


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
