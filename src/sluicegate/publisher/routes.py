"""The publisher's route table: which backend serves a request, and how its path and query are mapped.

Owns: choosing a route (``[[publisher.routes]]``, config/routes.py) by the longest matching path prefix on
the decoded path (a prefix matches at a segment boundary: ``/blog`` takes ``/blog`` and ``/blog/x``, not
``/blogger``; one ending in ``/`` takes what starts with it), a route bound to public hosts beating an
unbound one with the same prefix; the fallback page route (``[publisher] origin_url``, named ``default``)
when none matches; the path rewrite (``path_pattern`` + ``target_path``; no match -> 404, a result that is
not a path -> 502) and the query policy (``preserve`` | ``strip``); refusing dot segments (``/./``,
``/../``) on a configured route (400) so a client cannot walk out of a rewritten backend path; and the
per-route metrics (requests by status class, upstream head time, bytes out; label = the configured route
name, so cardinality is the size of the table).

How a route is served is not decided here: a ``page`` route is a ``PublisherApp`` of its own (its own
origin, aliases, Host header, TLS settings, timeouts and ``OriginPool``) that receives the mapped scope;
an ``asset`` route is ``publisher.assets.AssetRoute`` (streamed PassThrough, header allowlist, optional
S3 SigV4 signing and the image-optimizer seam). Must not know about bodies or rewriting.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from prometheus_client import Counter, Histogram

from sluicegate.config.model import Settings
from sluicegate.config.routes import DEFAULT_ROUTE, RouteSettings
from sluicegate.edge.asgi import Receive, Scope, Send, header_list, send_simple
from sluicegate.edge.headers import TrustedProxies
from sluicegate.observability import metrics
from sluicegate.publisher import headers as hdr
from sluicegate.publisher.app import PublisherApp
from sluicegate.publisher.assets import AssetRoute

log = logging.getLogger("sluicegate.publisher.routes")

ROUTE_REQUESTS = Counter(
    "sluicegate_publisher_route_requests_total",
    "Publisher requests by configured route (name from [[publisher.routes]], 'default' = origin_url), "
    "route kind (page / asset) and status class ('aborted' when the connection was dropped)",
    ["route", "kind", "status_class"],
    registry=metrics.REGISTRY,
)
ROUTE_UPSTREAM = Histogram(
    "sluicegate_publisher_route_upstream_headers_seconds",
    "Request start to the backend's response head, by configured route",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=metrics.REGISTRY,
)
ROUTE_BYTES = Counter(
    "sluicegate_publisher_route_body_bytes_total",
    "Response body bytes sent to clients, by configured route",
    ["route"],
    registry=metrics.REGISTRY,
)


# label children cached (``.labels()`` takes a lock and builds a key per call); the label sets are the table's
@functools.cache
def _requests(route: str, kind: str, status_class: str) -> Counter:
    return ROUTE_REQUESTS.labels(route, kind, status_class)


@functools.cache
def _upstream(route: str) -> Histogram:
    return ROUTE_UPSTREAM.labels(route)


@functools.cache
def _bytes(route: str) -> Counter:
    return ROUTE_BYTES.labels(route)


# the characters of a captured group kept as they are when it goes into a target path
_quote_group: Callable[[str], str] = functools.partial(quote, safe="/!$&'()*+,;=:@~")


class _Entry:
    __slots__ = ("handler", "hosts", "kind", "name", "prefix", "rewrite", "slash", "strip_query")

    def __init__(self, route: RouteSettings, handler: Any) -> None:
        self.name = route.name
        self.kind = route.kind
        self.prefix = route.prefix
        self.slash = route.prefix.endswith("/")
        self.hosts = route.hosts
        self.rewrite = route.rewrite
        self.strip_query = route.query == "strip"
        self.handler = handler

    def matches(self, path: str) -> bool:
        prefix = self.prefix
        if not path.startswith(prefix):
            return False
        return self.slash or len(path) == len(prefix) or path[len(prefix)] == "/"


def page_settings(settings: Settings, route: RouteSettings) -> Settings:
    """The settings a page route's own ``PublisherApp`` runs with: ``[publisher]`` with this route's
    backend, aliases, Host header and TLS check; ``[timeouts]`` with this route's overrides."""
    pub = settings.publisher.model_copy(
        update={
            "origin_url": route.origin_url,
            "origin_aliases": list(route.origin_aliases),
            "origin_host_header": route.origin_host_header,
            "verify_tls": route.verify_tls,
            "routes": [],
        }
    )
    over = {k: v for k, v in route.timeouts.model_dump().items() if v is not None}
    timeouts = settings.timeouts.model_copy(update=over) if over else settings.timeouts
    return settings.model_copy(update={"publisher": pub, "timeouts": timeouts})


class PublisherRoutes:
    """The publisher face when ``[[publisher.routes]]`` is set (``build_publisher`` picks it)."""

    def __init__(self, settings: Settings) -> None:
        pub = settings.publisher
        self.settings = settings
        self.public_hosts = pub.public_hosts
        self.trusted = TrustedProxies(settings.server.trusted_proxies)
        self.id_header = settings.server.request_id_header
        self.fallback = PublisherApp(settings)
        entries = []
        for route in pub.routes:
            handler: Any
            if route.kind == "page":
                handler = PublisherApp(page_settings(settings, route))
            else:
                handler = AssetRoute(route, settings)
            entries.append(_Entry(route, handler))
        # longest prefix first; at equal length a host-bound route before an unbound one
        entries.sort(key=lambda e: (-len(e.prefix), not e.hosts))
        self.entries = entries

    def backends(self) -> list[Any]:
        return [self.fallback, *(e.handler for e in self.entries)]

    async def startup(self) -> None:
        for backend in self.backends():
            await backend.startup()

    async def shutdown(self) -> None:
        for backend in self.backends():
            await backend.shutdown()

    def select(self, path: str, host: str, scheme: str) -> _Entry | None:
        """The route for (decoded path, lower-cased Host); ``None`` = the fallback page route."""
        for e in self.entries:
            if e.matches(path) and (not e.hosts or hdr.host_allowed(host, scheme, e.hosts)):
                return e
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        host = ""
        for k, v in scope.get("headers", ()):
            if k == b"host" or k.lower() == b"host":
                host = v.decode("latin-1").strip().lower()
                break
        path: str = scope["path"]
        scheme = scope.get("scheme", "http")
        entry = self.select(path, host, scheme) if host and hdr.valid_host(host) else None
        info = scope.get("sluicegate.info")
        if entry is None:
            await self._observed(DEFAULT_ROUTE, "page", self.fallback, scope, receive, send, info)
            return
        request_id = info.request_id if info is not None else os.urandom(8).hex()
        rid = [(self.id_header, request_id)]
        if not hdr.host_allowed(host, scheme, self.public_hosts):
            # maybe served under the scheme a trusted proxy says the client used (default ports differ)
            peer = (scope.get("client") or ("", 0))[0]
            facts = hdr.client_facts(peer, scheme, host, header_list(scope), self.trusted)
            if not hdr.host_allowed(host, facts.scheme, self.public_hosts):
                await send_simple(send, 421, b"Misdirected request: this host is not served here\n", rid)
                return
        if _has_dot_segment(path):
            await self._answer(entry, send, info, 400, b"Path with dot segments refused\n", rid)
            return
        mapped = self._map(entry, scope)
        if isinstance(mapped, tuple):
            status, body = mapped
            if status == 502:
                log.warning("request %s: route %s: %s", request_id, entry.name, body.decode().strip())
            await self._answer(entry, send, info, status, body, rid)
            return
        await self._observed(entry.name, entry.kind, entry.handler, mapped, receive, send, info)

    def _map(self, entry: _Entry, scope: Scope) -> Scope | tuple[int, bytes]:
        """The scope the route's handler sees (path rewritten, query per policy), or an answer."""
        rewrite = entry.rewrite
        if rewrite is None and not entry.strip_query:
            return scope
        out = dict(scope)
        if rewrite is not None:
            target = rewrite.apply(scope["path"], _quote_group)
            if target is None:
                return 404, b"Not found\n"
            if not target.startswith("/"):
                return 502, f"route {entry.name}: path_pattern/target_path gave {target[:80]!r}, not a path\n".encode()
            out["sluicegate.public_path"] = scope["path"]
            out["raw_path"] = target.encode("ascii")
            out["path"] = target
        if entry.strip_query:
            out["sluicegate.client_query"] = scope.get("query_string", b"")
            out["query_string"] = b""
        return out

    async def _answer(
        self, entry: _Entry, send: Send, info: Any, status: int, body: bytes, rid: list[tuple[str, str]]
    ) -> None:
        if info is not None:
            info.route = "rejected"
        await send_simple(send, status, body, rid)
        _requests(entry.name, entry.kind, f"{status // 100}xx").inc()

    async def _observed(
        self, name: str, kind: str, handler: Any, scope: Scope, receive: Receive, send: Send, info: Any
    ) -> None:
        sent = info.bytes_out if info is not None else 0
        status_class = "aborted"
        try:
            await handler(scope, receive, send)
            if info is not None and info.status:
                status_class = f"{info.status // 100}xx"
        finally:
            _requests(name, kind, status_class).inc()
            if info is not None:
                if info.upstream_s >= 0:
                    _upstream(name).observe(info.upstream_s)
                _bytes(name).inc(max(0, info.bytes_out - sent))


def _has_dot_segment(path: str) -> bool:
    if "/." not in path:
        return False
    return any(seg in (".", "..") for seg in path.split("/"))


def build_publisher(settings: Settings) -> PublisherApp | PublisherRoutes:
    """The publisher face: the single-origin proxy as before, or the route table when routes are configured."""
    if settings.publisher.routes:
        return PublisherRoutes(settings)
    return PublisherApp(settings)
