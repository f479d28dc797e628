"""An asset route (``kind = "asset"``): a backend's bytes streamed to the client, nothing private leaking.

Owns, for one ``[[publisher.routes]]`` asset entry (issue 16 §2):

* methods: GET and HEAD only; anything else -> 405 with ``Allow: GET, HEAD``; the request body is never
  forwarded;
* the outbound request: an allowlist of client headers (``User-Agent``, ``Accept``, ``Accept-Encoding``,
  ``Accept-Language``, ``Referer``, the conditional headers, ``Range``, ``If-Range``), ``Host`` of the target
  (``origin_host_header`` or ``origin_url``'s authority, ``:port`` only when not the default) and the request
  id. No cookies, no client ``Authorization``, no forwarding headers. With ``s3`` the request is signed
  (AWS SigV4, ``UNSIGNED-PAYLOAD``; ``publisher.s3sign``) after the query policy, so the signature covers
  the exact target sent;
* the response: status and headers as the backend sent them (redirects are returned, never followed;
  ``206`` + ``Content-Range`` untouched; ``Content-Length`` kept), minus hop-by-hop headers,
  ``Set-Cookie``, ``Strict-Transport-Security``, ``Clear-Site-Data`` and ``Alt-Svc`` (they describe the
  backend, not the public site); the route's ``cache_control`` replaces the backend's on 2xx/304 and is
  applied last;
* the body: PassThrough always (no decoding, no rewriting), relayed chunk by chunk as it arrives with the
  client's backpressure reaching the backend (``limits.origin_read_buffer_bytes`` per response); HEAD, 204,
  304 (and 1xx/205) carry no body. Failures before the head: 502 (connect/protocol) or 504 (first byte);
  after it the client connection is aborted, never a clean-looking truncated body;
* the image-optimizer seam (``publisher.optimizer_seam``): when the route has one, it is asked first.

Each asset route has its own ``OriginPool`` (connections, TLS check) and timeouts.
Must not know about HTML, rewriting, or what the optimizer does with an image.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from typing import NoReturn

from sluicegate.config.model import Settings
from sluicegate.config.routes import RouteSettings
from sluicegate.edge.asgi import (
    Receive,
    ResponseAborted,
    Scope,
    Send,
    encode_headers,
    header_list,
    send_simple,
)
from sluicegate.edge.client import ClientWatch
from sluicegate.edge.deadline import Deadline
from sluicegate.edge.headers import end_to_end
from sluicegate.gate import bodiless_headers
from sluicegate.observability import metrics
from sluicegate.publisher import optimizer_seam
from sluicegate.publisher.failures import UpstreamFailed, public_reason
from sluicegate.publisher.relay import pass_through
from sluicegate.publisher.s3sign import S3Signer
from sluicegate.upstream.errors import OriginError
from sluicegate.upstream.http1 import OriginPool, OriginResponse

log = logging.getLogger("sluicegate.publisher.assets")

Headers = list[tuple[str, str]]

# client request headers an asset backend may see (lower-case)
OUTBOUND_ALLOWLIST = frozenset({
    "user-agent", "accept", "accept-encoding", "accept-language", "referer",
    "if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "range", "if-range",
})
# backend response headers never relayed (besides hop-by-hop ones)
RESPONSE_DROPPED = frozenset({"set-cookie", "strict-transport-security", "clear-site-data", "alt-svc"})
ALLOW = "GET, HEAD"

class AssetRoute:
    def __init__(self, route: RouteSettings, settings: Settings, environ: dict[str, str] | None = None) -> None:
        self.route = route
        self.name = route.name
        self.origin = route.origin
        self.host_header = route.origin_host_header or self.origin.authority
        self.id_header = settings.server.request_id_header
        t = settings.timeouts
        rt = route.timeouts
        self.connect_timeout = rt.connect or t.connect
        self.first_byte = rt.first_byte or t.first_byte
        self.idle = rt.idle or t.idle
        self.keepalive = t.origin_keepalive
        self.limits = settings.limits
        self.cache_control = route.cache_control
        # response headers never relayed: the private ones, the backend's request id (ours replaces it), and
        # with cache_control on 2xx/304 the backend's Cache-Control
        self._dropped = RESPONSE_DROPPED | {self.id_header}
        self._dropped_2xx = self._dropped | {"cache-control"}
        self.signer: S3Signer | None = None
        if route.s3 is not None:
            try:
                self.signer = S3Signer(route.s3, self.origin, environ)
            except ValueError as exc:  # names the variable or file, never a value
                raise ValueError(f"publisher.routes[{route.name}].s3: {exc}") from None
        self.optimizer = optimizer_seam.build(route, settings)
        self.pool: OriginPool | None = None

    async def startup(self) -> None:
        if self.pool is None:
            o = self.origin
            self.pool = OriginPool(
                o.scheme, o.host, o.port,
                connect_timeout=self.connect_timeout,
                verify_tls=self.route.verify_tls,
                limit=self.limits.max_origin_connections,
                keepalive_timeout=self.keepalive,
                max_head_bytes=self.limits.max_origin_head_bytes,
                high_water=self.limits.origin_read_buffer_bytes,
            )

    async def shutdown(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    # ---- policy (pure) ------------------------------------------------------------------------------
    def outbound_headers(self, client: Sequence[tuple[str, str]], request_id: str) -> Headers:
        out: Headers = [("host", self.host_header)]
        for name, value in client:
            if name.lower() in OUTBOUND_ALLOWLIST:
                out.append((name, value))
        out.append((self.id_header, request_id))
        return out

    def response_headers(self, status: int, headers: Headers, request_id: str) -> Headers:
        dropped = self._dropped_2xx if self.cache_control and (200 <= status < 300 or status == 304) else self._dropped
        out = [(name, value) for lower, name, value in end_to_end(headers) if lower not in dropped]
        out.append((self.id_header, request_id))
        if dropped is self._dropped_2xx:
            out.append(("cache-control", self.cache_control))  # last: nothing after this changes it
        return out

    # ---- request ------------------------------------------------------------------------------------
    async def _request(self, method: str, target: str, headers: Headers) -> OriginResponse:
        await self.startup()
        pool = self.pool
        assert pool is not None
        if self.signer is not None:
            target, headers = self.signer.sign(method, target, headers)
        return await pool.request(method, target, headers, None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        info = scope.get("sluicegate.info")
        request_id = info.request_id if info is not None else os.urandom(8).hex()
        rid = [(self.id_header, request_id)]
        method = scope["method"].upper()
        if info is not None:
            info.route = info.kind = "asset"
        if method not in ("GET", "HEAD"):
            await send_simple(send, 405, b"Method not allowed: this is an asset route (GET, HEAD)\n",
                              [*rid, ("allow", ALLOW)])
            return
        raw = scope.get("raw_path") or scope["path"].encode()
        target = raw.decode("latin-1")
        query = scope.get("query_string", b"")
        if query:
            target += "?" + query.decode("latin-1")
        client_headers = header_list(scope)
        up_headers = self.outbound_headers(client_headers, request_id)

        watch = ClientWatch(receive, send)
        watch.start(has_body=False)
        send = watch.send
        task = asyncio.current_task()
        assert task is not None
        deadline = Deadline(asyncio.get_running_loop(), task)
        started = time.perf_counter()
        try:
            if self.optimizer is not None:
                exchange = self._exchange(scope, method, target, client_headers, up_headers, request_id, deadline)
                if await self.optimizer.maybe_optimize(exchange, send):
                    return
            if info is not None and info.span is not None:  # tracing on: a client span (not carried upstream:
                # the outbound headers are an allowlist)
                info.upstream_span, _carried = info.tracer.client_span(
                    info.span, f"{method} asset {self.name}",
                    {"server.address": self.origin.host, "server.port": self.origin.port},
                )
            try:
                with deadline:
                    deadline.after(self.first_byte)
                    resp = await self._request(method, target, up_headers)
            except TimeoutError:
                raise UpstreamFailed(504, "first_byte_timeout",
                                     f"no response head within {self.first_byte:g}s") from None
            except OriginError as exc:
                raise UpstreamFailed(502, exc.kind, str(exc)) from None
            waited = time.perf_counter() - started
            metrics.PUBLISHER_TTFB.observe(waited)
            if info is not None:
                info.upstream_s = waited
                info.upstream_status = resp.status
                if info.upstream_span is not None:
                    info.tracer.end_client(info.upstream_span, resp.status)
                    info.upstream_span = None
            try:
                await self._relay(resp, method, send, request_id, deadline)
            finally:
                resp.release()
        except UpstreamFailed as exc:
            metrics.publisher_error("before_commit", exc.kind).inc()
            log.warning("request %s: asset route %s: %s (%s)", request_id, self.name, exc, exc.kind)
            if info is not None:
                info.error = exc.kind
            reason = public_reason(exc, "asset backend", "the asset backend", "asset backend failed")
            await send_simple(send, exc.status, f"{reason} (request id {request_id})\n".encode(), rid)
        except asyncio.CancelledError:
            if watch.disconnected:
                metrics.publisher_error("client", "disconnect").inc()
                if info is not None:
                    info.error = "client_gone"
                return
            raise
        finally:
            deadline.close()
            watch.stop()

    async def _relay(self, resp: OriginResponse, method: str, send: Send, request_id: str, deadline: Deadline) -> None:
        status = resp.status
        origin_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers]
        out = self.response_headers(status, origin_headers, request_id)
        if method == "HEAD" or status in (204, 205, 304) or status < 200:
            await send({"type": "http.response.start", "status": status,
                        "headers": encode_headers(bodiless_headers(status, out))})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await send({"type": "http.response.start", "status": status, "headers": encode_headers(out)})
        await pass_through(resp, send, deadline, self.idle, lambda kind, msg: self._abort(request_id, kind, msg),
                           who="asset backend")

    def _abort(self, request_id: str, kind: str, message: str) -> NoReturn:
        metrics.publisher_error("after_commit", kind).inc()
        log.warning("request %s: asset route %s: aborting after commit: %s (%s)", request_id, self.name, message,
                    kind)
        aborted = ResponseAborted(message)
        aborted.kind = kind
        raise aborted

    def _exchange(
        self, scope: Scope, method: str, target: str, client_headers: Headers, up_headers: Headers, request_id: str,
        deadline: Deadline,
    ) -> optimizer_seam.AssetExchange:
        async def fetch(
            fetch_method: str, extra: Sequence[tuple[str, str]], drop: frozenset[str], to: str | None
        ) -> OriginResponse:
            kept = [(k, v) for k, v in up_headers if k.lower() not in drop] if drop else up_headers
            with deadline:
                deadline.after(self.first_byte)
                return await self._request(fetch_method, to or target, [*kept, *extra])

        return optimizer_seam.AssetExchange(
            route=self.route,
            method=method,
            path=scope.get("sluicegate.public_path", scope["path"]),
            target=target,
            client_query=scope.get("sluicegate.client_query", scope.get("query_string", b"")),
            headers=client_headers,
            request_id=request_id,
            fetch=fetch,
            response_headers=lambda status, headers: self.response_headers(status, headers, request_id),
        )
