"""The publisher face's intake: one request in, checked, one origin request out, the relay chosen.

Order of work for a request:
  1. own checks (method, Host against ``public_hosts``, header size) -> 405/400/421/431, the origin untouched;
  2. the origin request: method, raw path + query, streamed body, transformed headers (``headers``); with
     ``map_requests`` the query values, Referer/Origin/Cookie and form bodies are mapped public -> origin
     (``inbound``: the query is mapped in place, never re-quoted; a form body is read up to
     ``request_map_hold_bytes`` first so that a short one keeps an exact Content-Length);
  3. at the origin's response head: ``gate.classify`` picks the route and ``relay.Relay`` sends the
     response on (head at once, body as it arrives).

Owns the request's lifecycle on the edge primitives: the ``ClientWatch`` (a client disconnect cancels
the handler exactly once, and the origin request with it), the one ``Deadline`` (``[timeouts]
first_byte`` bounds everything up to the response head, the relay re-arms it per read), and what a
failure becomes *before* the commit: a 502 (connect, protocol) or 504 (first-byte timeout) whose body
names the request id and never the origin's details (those go to the log). After the commit the relay
aborts instead. Bounded: the request head (``max_request_header_bytes``), the two per-host caches (256).

Must not know: how a body is relayed or rewritten (``relay``, ``pipeline``), the wire (``upstream``),
ASGI beyond ``edge``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any, Protocol

from sluicegate import gate
from sluicegate.config.model import Settings
from sluicegate.edge.asgi import ClientGone, Receive, Scope, Send, header_list, send_simple
from sluicegate.edge.client import start_request
from sluicegate.edge.headers import TrustedProxies, forwarded_client
from sluicegate.observability import metrics
from sluicegate.pipeline.hosts import HostRewriter, OriginMatcher
from sluicegate.publisher import coding, inbound
from sluicegate.publisher import headers as hdr
from sluicegate.publisher.failures import UpstreamFailed, public_reason
from sluicegate.publisher.relay import PagePass, Relay
from sluicegate.upstream.errors import BodySourceStopped, OriginError
from sluicegate.upstream.http1 import OriginPool, OriginResponse

log = logging.getLogger("sluicegate.publisher")

_RSC_HEADERS = ("rsc", "next-router-state-tree", "next-router-prefetch", "next-router-segment-prefetch")
_CACHED_HOSTS = 256  # per-(scheme, public host) rewriters and mappers kept; bounded for public_hosts = ["*"]


class _Identity(Protocol):
    """What the intake uses of the edge identity (``identity.edge.EdgeIdentity``, imported only when it is on)."""

    def begin(self, headers: list[tuple[str, str]], client_ip: str, trusted_peer: bool) -> Any: ...


class PublisherApp:
    """The publisher face as an ASGI callable (``server.app`` dispatches to it)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        pub = settings.publisher
        self.origin = pub.origin
        self.matcher = OriginMatcher(self.origin, pub.all_origin_aliases)
        self.trusted = TrustedProxies(settings.server.trusted_proxies)
        self.public_hosts = pub.public_hosts
        self.pool: OriginPool | None = None
        self.timeouts = settings.timeouts
        self.limits = settings.limits
        self.id_header = settings.server.request_id_header
        self._rewriters: dict[tuple[str, str], HostRewriter] = {}
        self._inbound: dict[tuple[str, str], inbound.InboundMapper | None] = {}
        # issue 17 hooks: consent-gated edge identity and [first_party] rewrite_domains (None = off); their modules
        # are imported here only when the section is on (an idle worker without them is 2 MiB smaller)
        self.identity: _Identity | None = None
        if settings.identity.enabled:
            from sluicegate.identity.edge import EdgeIdentity

            self.identity = EdgeIdentity.from_settings(settings.identity)
        pages: PagePass | None = None
        if settings.first_party.enabled:
            from sluicegate.firstparty.page import PageRewriting

            pages = PageRewriting.from_settings(settings)
        self.relay = Relay(settings, self.origin, pages)
        # the Host the origin gets (upstream_request_headers' rule, computed once: ``Origin.authority`` is a property)
        self._origin_host = pub.origin_host_header or self.origin.authority

    def rewriter(self, scheme: str, host: str) -> HostRewriter:
        """One ``HostRewriter`` per (scheme, public host), reused."""
        key = (scheme, host.lower())
        rw = self._rewriters.get(key)
        if rw is None:
            if len(self._rewriters) >= _CACHED_HOSTS:
                self._rewriters.clear()
            rw = self._rewriters[key] = self.matcher.for_request(scheme, key[1])
        return rw

    def _inbound_mapper(self, scheme: str, host: str) -> inbound.InboundMapper | None:
        """The public -> origin mapping for requests on (scheme, public host); ``None`` when it is off."""
        if not self.settings.publisher.map_requests:
            return None
        key = (scheme, host.lower())
        if key not in self._inbound:
            if len(self._inbound) >= _CACHED_HOSTS:
                self._inbound.clear()
            self._inbound[key] = inbound.InboundMapper.build(
                scheme, key[1], self.origin, self.settings.publisher.origin_host_header
            )
        return self._inbound[key]

    async def startup(self) -> None:
        if self.pool is None:
            origin = self.origin
            self.pool = OriginPool(
                origin.scheme,
                origin.host,
                origin.port,
                connect_timeout=self.timeouts.connect,
                verify_tls=self.settings.publisher.verify_tls,
                ca_file=self.settings.publisher.ca_file,
                limit=self.limits.max_origin_connections,
                keepalive_timeout=self.timeouts.origin_keepalive,
                max_head_bytes=self.limits.max_origin_head_bytes,
                high_water=self.limits.origin_read_buffer_bytes,
            )

    async def shutdown(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    def _admit(self, scope: Scope, method: str, req_headers: list[tuple[str, str]],
               seen: _Seen) -> hdr.ClientFacts | tuple[int, bytes]:
        """The own checks: the client's facts when the request is admitted, else the answer (405/400/421/431)."""
        if method == "CONNECT":
            return 405, b"CONNECT is not supported: this is a reverse proxy\n"
        host = seen.host.strip()
        if not host or not hdr.valid_host(host):
            return 400, b"Missing or invalid Host header\n"
        client = scope.get("client") or ("", 0)
        facts = hdr.client_facts(client[0], scope.get("scheme", "http"), host, req_headers, self.trusted)
        if not hdr.host_allowed(host, facts.scheme, self.public_hosts):
            return 421, b"Misdirected request: this host is not served here\n"
        if seen.size > self.limits.max_request_header_bytes:
            return 431, b"Request header fields too large\n"
        return facts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        info = scope.get("sluicegate.info")
        request_id = info.request_id if info is not None else os.urandom(8).hex()
        rid = [(self.id_header, request_id)]
        req_headers = header_list(scope)
        seen = _Seen(req_headers)
        method = scope["method"].upper()
        facts = self._admit(scope, method, req_headers, seen)
        if not isinstance(facts, hdr.ClientFacts):
            await send_simple(send, facts[0], facts[1], rid)
            return
        host = facts.host
        rewriter = self.rewriter(facts.scheme, host)
        up_headers = hdr.upstream_request_headers(
            req_headers, facts, self.origin, self._origin_host, request_id, id_header=self.id_header,
        )
        if info is not None and info.span is not None:  # tracing on: a client span, carried by traceparent
            info.upstream_span, carried = info.tracer.client_span(
                info.span, f"{method} origin", {"server.address": self.origin.host, "server.port": self.origin.port}
            )
            up_headers = [(k, v) for k, v in up_headers if k.lower() not in ("traceparent", "tracestate")] + carried
        edge = None
        if self.identity is not None:  # the ID's address: the client behind trusted proxies, never a header else
            xff = ",".join(v for k, v in req_headers if k.lower() == "x-forwarded-for") if facts.trusted_peer else ""
            client_ip = forwarded_client(facts.ip, xff, self.trusted) if xff else facts.ip
            edge = self.identity.begin(req_headers, client_ip, facts.trusted_peer)
        if edge is not None:
            up_headers = edge.upstream(up_headers)
            send = edge.wrap(send)  # Set-Cookie goes into the response head, before any body byte
        has_body = seen.has_body
        mapper = self._inbound_mapper(facts.scheme, host)
        form = None
        if mapper is not None:
            if seen.mapped:  # a Referer, Origin or Cookie to map (else map_headers copies the list unchanged)
                up_headers = mapper.map_headers(up_headers)
            if has_body:
                form = mapper.body_mapper(
                    req_headers, self.limits.request_map_hold_bytes, self.limits.map_request_body_bytes
                )

        watch, deadline = start_request(receive, send, has_body=has_body, scope=scope)
        send = watch.sender
        started = time.perf_counter()
        try:
            if self.pool is None:
                await self.startup()
            pool = self.pool
            assert pool is not None
            target = _target(scope, mapper)
            try:
                with deadline:
                    deadline.after(self.timeouts.first_byte)
                    body = inbound.client_body(watch) if has_body else None
                    if body is not None and form is not None:
                        body, length = await inbound.prepare_body(body, form, self.limits.request_map_hold_bytes)
                        up_headers = [(k, v) for k, v in up_headers if k.lower() != "content-length"]
                        if length is not None:
                            up_headers.append(("content-length", str(length)))
                    resp = await pool.request(method, target, up_headers, body)
            except TimeoutError:
                raise UpstreamFailed(
                    504, "first_byte_timeout", f"origin sent no response head within {self.timeouts.first_byte:g}s"
                ) from None
            except OriginError as exc:
                raise UpstreamFailed(502, exc.kind, str(exc)) from None
            waited = time.perf_counter() - started
            metrics.observe_later(metrics.PUBLISHER_TTFB, waited)
            try:
                decision, plan = self.relay.classify(method, resp)
                if info is not None:
                    _note_head(info, resp, decision, waited)
                await self.relay.respond(
                    resp, None, decision, plan=plan, method=method, rewriter=rewriter,
                    navigation=not seen.rsc, send=send, request_id=request_id, deadline=deadline,
                    accepted=coding.Accepted(seen.accept_encoding), label=f"{method} {scope.get('path', '')}",
                    if_none_match=seen.if_none_match,
                )
            finally:
                resp.release()
        except UpstreamFailed as exc:
            metrics.publisher_error("before_commit", exc.kind).inc()
            log.warning("request %s: %s -> %d", request_id, exc, exc.status)
            if info is not None:
                info.error = exc.kind
            reason = public_reason(exc, "origin", "origin", "bad gateway" if exc.status == 502 else "origin failed")
            await send_simple(send, exc.status, f"{reason} (request id {request_id})\n".encode(), rid)
        except asyncio.CancelledError:
            if not watch.disconnected:
                raise
            self._client_gone(info, request_id, "client disconnected; origin request cancelled")
        except (ClientGone, BodySourceStopped):
            self._client_gone(info, request_id, "client disconnected while sending its body")
        finally:
            deadline.close()
            watch.stop()

    @staticmethod
    def _client_gone(info: Any, request_id: str, what: str) -> None:
        metrics.publisher_error("client", "disconnect").inc()
        log.info("request %s: %s", request_id, what)
        if info is not None:
            info.error = "client_gone"


class _Seen:
    """What the intake reads from the request headers, in one pass: Host (the first), the head's size, whether a
    body follows (HTTP/1.1: only if Transfer-Encoding or a Content-Length > 0 says so), Accept-Encoding (all
    values joined; ``None``: absent), the first If-None-Match, whether it is a React Server Components request
    (not a navigation), and whether a header the inbound mapping rewrites (Referer, Origin, Cookie) is there."""

    __slots__ = ("accept_encoding", "has_body", "host", "if_none_match", "mapped", "rsc", "size")

    def __init__(self, headers: list[tuple[str, str]]) -> None:
        host = inm = ""
        size = 0
        has_body = rsc = mapped = False
        accept: list[str] | None = None
        for k, v in headers:
            size += len(k) + len(v) + 4
            lk = k.lower()
            if lk == "host":
                if not host:
                    host = v
            elif lk == "accept-encoding":
                if accept is None:
                    accept = [v]
                else:
                    accept.append(v)
            elif lk == "transfer-encoding":
                has_body = True
            elif lk == "content-length":
                if v.strip() not in ("", "0"):
                    has_body = True
            elif lk == "if-none-match":
                if not inm:
                    inm = v
            elif lk in _RSC_HEADERS:
                rsc = True
            elif lk == "cookie" or lk == "referer" or lk == "origin":
                mapped = True
        self.host = host
        self.size = size
        self.has_body = has_body
        self.accept_encoding = None if accept is None else ", ".join(accept)
        self.if_none_match = inm
        self.rsc = rsc
        self.mapped = mapped


def _target(scope: Scope, mapper: inbound.InboundMapper | None) -> str:
    """The request target for the origin: the client's raw path bytes (never re-quoted), the query mapped in place."""
    path: bytes = scope.get("raw_path") or scope["path"].encode()
    target = path.decode("latin-1")
    if not target.startswith("/"):
        target = "/" + target
    query: bytes = scope.get("query_string", b"")
    if query:
        if mapper is not None:
            query = mapper.map_query(query)
        target += "?" + query.decode("latin-1")
    return target


def _note_head(info: Any, resp: OriginResponse, decision: gate.Decision, waited: float) -> None:
    """The access log's and trace's view of the origin's head (``server.observe``'s request info)."""
    info.upstream_s = waited
    info.upstream_status = resp.status
    span = info.upstream_span
    if span is not None:
        info.tracer.end_client(span, resp.status)
        info.upstream_span = None
    info.route = decision.route.value
    info.kind = decision.kind.value

