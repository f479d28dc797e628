"""The publisher proxy: one request in, one origin request out, the response relayed as it arrives.

Order of work for a request:
  1. own checks (method, Host against ``public_hosts``) -> 400/405/421 without calling the origin;
  2. origin request: method, raw path + query, streamed body, transformed headers;
  3. at the origin's response head: ``gate.classify`` picks the route and the head is sent at once;
  4. body relay per route (PassThrough / Stream / Bodiless / Buffered).

Failures before the head is sent become a 502 (connect/protocol) or 504 (first-byte timeout).
After it, the connection is aborted (``ResponseAborted``): the client must see an incomplete
response, never a clean-looking truncated one. A client disconnect cancels the origin request at
once (``ClientWatch``). This module moves bytes; rewriting lives in ``pipeline``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable

from sluicegate import gate
from sluicegate.config.model import Settings
from sluicegate.gate import Route
from sluicegate.observability import metrics
from sluicegate.pipeline import PipelineError, Transformer
from sluicegate.pipeline.codecs import Decoder, Encoder, decoder_for, encoder_for
from sluicegate.pipeline.hosts import HostRewriter, OriginMatcher
from sluicegate.publisher import headers as hdr
from sluicegate.publisher.processors import build_processor
from sluicegate.server.asgi import (
    ClientGone,
    ClientWatch,
    Receive,
    ResponseAborted,
    Scope,
    Send,
    encode_headers,
    header_list,
    send_simple,
)
from sluicegate.server.deadline import Deadline
from sluicegate.upstream.http1 import OriginError, OriginPool, OriginResponse

log = logging.getLogger("sluicegate.publisher")

_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "TRACE"})
_RSC_HEADERS = ("rsc", "next-router-state-tree", "next-router-prefetch", "next-router-segment-prefetch")


class UpstreamFailed(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


class PublisherProxy:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        pub = settings.publisher
        self.origin = pub.origin
        self.matcher = OriginMatcher(self.origin, pub.all_origin_aliases)
        self.trusted = hdr.TrustedProxies(settings.server.trusted_proxies)
        self.public_hosts = pub.public_hosts
        self.pool: OriginPool | None = None
        self.timeouts = settings.timeouts
        self.limits = settings.limits
        self.codec_levels = settings.compression.model_dump()
        self._rewriters: dict[tuple[str, str], HostRewriter] = {}

    def _rewriter(self, scheme: str, host: str) -> HostRewriter:
        """One ``HostRewriter`` per (scheme, public host), reused; bounded for ``public_hosts = ["*"]``."""
        key = (scheme, host.lower())
        rw = self._rewriters.get(key)
        if rw is None:
            if len(self._rewriters) >= 256:
                self._rewriters.clear()
            rw = self._rewriters[key] = self.matcher.for_request(scheme, key[1])
        return rw

    async def startup(self) -> None:
        if self.pool is None:
            origin = self.origin
            self.pool = OriginPool(
                origin.scheme,
                origin.host,
                origin.port,
                connect_timeout=self.timeouts.connect,
                verify_tls=self.settings.publisher.verify_tls,
                limit=self.limits.max_origin_connections,
                keepalive_timeout=self.timeouts.origin_keepalive,
                max_head_bytes=self.limits.max_origin_head_bytes,
                high_water=self.limits.origin_read_buffer_bytes,
            )

    async def shutdown(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = os.urandom(8).hex()
        method = scope["method"].upper()
        req_headers = header_list(scope)
        if method == "CONNECT":
            await send_simple(
                send, 405, b"CONNECT is not supported: this is a reverse proxy\n", [("x-request-id", request_id)]
            )
            return
        host = next((v for k, v in req_headers if k.lower() == "host"), "").strip()
        if not host or not hdr.valid_host(host):
            await send_simple(send, 400, b"Missing or invalid Host header\n", [("x-request-id", request_id)])
            return
        scheme = scope.get("scheme", "http")
        client = scope.get("client") or ("", 0)
        facts = hdr.client_facts(client[0], scheme, host, req_headers, self.trusted)
        if not hdr.host_allowed(host, facts.scheme, self.public_hosts):
            await send_simple(
                send, 421, b"Misdirected request: this host is not served here\n", [("x-request-id", request_id)]
            )
            return
        if await self._oversized_head(req_headers, send, request_id):
            return
        rewriter = self._rewriter(facts.scheme, host)
        up_headers = hdr.upstream_request_headers(
            req_headers, facts, self.origin, self.settings.publisher.origin_host_header, request_id
        )
        # HTTP/1.1: a request has a body only if it says so (Transfer-Encoding or Content-Length > 0).
        has_body = any(
            (k.lower() == "transfer-encoding") or (k.lower() == "content-length" and v.strip() not in ("", "0"))
            for k, v in req_headers
        )
        navigation = not any(k.lower() in _RSC_HEADERS for k, _ in req_headers)

        watch = ClientWatch(receive, send)
        watch.start(has_body=has_body)
        send = watch.send
        task = asyncio.current_task()
        assert task is not None
        deadline = Deadline(asyncio.get_running_loop(), task)
        started = time.perf_counter()
        try:
            await self.startup()
            pool = self.pool
            assert pool is not None
            path = scope.get("raw_path") or scope["path"].encode()
            target = path.decode("latin-1")
            if not target.startswith("/"):
                target = "/" + target
            query = scope.get("query_string", b"")
            if query:
                target += "?" + query.decode("latin-1")
            try:
                with deadline:
                    deadline.after(self.timeouts.first_byte)
                    # the target is the client's bytes, not re-quoted
                    resp = await pool.request(method, target, up_headers, watch.body() if has_body else None)
            except TimeoutError:
                raise UpstreamFailed(
                    504, "first_byte_timeout", f"origin sent no response head within {self.timeouts.first_byte:g}s"
                ) from None
            except OriginError as exc:
                raise UpstreamFailed(502, exc.kind, str(exc)) from None
            metrics.PUBLISHER_TTFB.observe(time.perf_counter() - started)
            try:
                origin_headers = _raw_headers(resp)
                decision = gate.classify(method, resp.status, origin_headers)
                await self._relay(
                    resp, origin_headers, decision, method, rewriter, navigation, send, request_id, deadline
                )
            finally:
                resp.release()
        except UpstreamFailed as exc:
            metrics.publisher_error("before_commit", exc.kind).inc()
            log.warning("request %s: %s -> %d", request_id, exc, exc.status)
            await send_simple(send, exc.status, f"{exc}\n".encode(), [("x-request-id", request_id)])
        except asyncio.CancelledError:
            if watch.disconnected:
                metrics.publisher_error("client", "disconnect").inc()
                log.info("request %s: client disconnected; origin request cancelled", request_id)
                return
            raise
        except ClientGone:
            metrics.publisher_error("client", "disconnect").inc()
            log.info("request %s: client disconnected while sending its body", request_id)
        finally:
            deadline.close()
            watch.stop()

    async def _oversized_head(self, req_headers: list[tuple[str, str]], send: Send, request_id: str) -> bool:
        size = sum(len(k) + len(v) + 4 for k, v in req_headers)
        if size > self.limits.max_request_header_bytes:
            await send_simple(send, 431, b"Request header fields too large\n", [("x-request-id", request_id)])
            return True
        return False

    async def _relay(
        self,
        resp: OriginResponse,
        origin_headers: list[tuple[str, str]],
        decision: gate.Decision,
        method: str,
        rewriter: HostRewriter,
        navigation: bool,
        send: Send,
        request_id: str,
        deadline: Deadline,
    ) -> None:
        status = resp.status
        out_headers = hdr.downstream_response_headers(origin_headers, rewriter, self.origin, request_id)
        route = decision.route
        if route is Route.STREAM and self.settings.publisher.mode == "buffered":
            route = Route.BUFFERED
        metrics.publisher_response(route.value, f"{status // 100}xx").inc()

        if route is Route.BODILESS:
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": encode_headers(gate.bodiless_headers(status, out_headers)),
                }
            )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return

        if route is Route.PASS_THROUGH:
            await send({"type": "http.response.start", "status": status, "headers": encode_headers(out_headers)})
            await self._pump(resp, send, request_id, deadline, None, None)
            return

        ctype = next((v for k, v in reversed(out_headers) if k.lower() == "content-type"), "")
        processor = build_processor(
            decision.kind, rewriter, self.settings, navigation_request=navigation, content_type=ctype
        )
        decoder = decoder_for(decision.encoding, self.limits.max_decoded_body_bytes)
        encoder = encoder_for(decision.encoding, **self.codec_levels)
        out_headers = hdr.for_rewritten_body(out_headers)

        if route is Route.BUFFERED:
            await self._buffered(resp, status, out_headers, decoder, processor, encoder, send, deadline)
            return

        await send({"type": "http.response.start", "status": status, "headers": encode_headers(out_headers)})

        def transform(raw: bytes) -> list[bytes]:
            return [out for piece in decoder.feed_pieces(raw) if (out := encoder.feed(processor.feed(piece)))]

        def tail() -> bytes:
            rest = processor.feed(decoder.finish()) + processor.finish()
            return encoder.feed(rest) + encoder.finish()

        await self._pump(resp, send, request_id, deadline, transform, tail)

    async def _pump(
        self,
        resp: OriginResponse,
        send: Send,
        request_id: str,
        deadline: Deadline,
        transform: Callable[[bytes], list[bytes]] | None,
        tail: Callable[[], bytes] | None,
    ) -> None:
        """Relay body chunks until the origin ends; abort the client on any failure.

        ``idle`` bounds each wait for the origin and nothing else: time spent in ``send`` is the
        client's backpressure, not origin silence.
        """
        idle = self.timeouts.idle
        relayed_in = 0
        last: list[bytes] = []
        readany = resp.read
        at_eof = resp.at_eof
        try:
            with deadline:
                while True:
                    deadline.after(idle)
                    chunk = await readany()
                    deadline.clear()
                    if not chunk:
                        break
                    relayed_in += len(chunk)
                    outs = [chunk] if transform is None else transform(chunk)
                    if at_eof():
                        # The origin is done: this output leaves with the end of the response (one write
                        # instead of two for small bodies); the next read returns b"" and ends the loop.
                        last = outs
                        continue
                    for out in outs:
                        await send({"type": "http.response.body", "body": out, "more_body": True})
            final = b"".join(last) + (tail() if tail is not None else b"")
        except TimeoutError:
            self._abort(request_id, "idle_timeout", f"origin sent nothing for {idle:g}s mid-body")
        except PipelineError as exc:
            self._abort(request_id, exc.kind, str(exc))
        except OriginError as exc:
            self._abort(request_id, exc.kind, f"origin body failed: {exc}")
        metrics.FROM_ORIGIN_BYTES.inc(relayed_in)
        await send({"type": "http.response.body", "body": final, "more_body": False})

    def _abort(self, request_id: str, kind: str, message: str) -> None:
        metrics.publisher_error("after_commit", kind).inc()
        log.warning("request %s: aborting client connection after commit: %s (%s)", request_id, message, kind)
        raise ResponseAborted(message)

    async def _buffered(
        self,
        resp: OriginResponse,
        status: int,
        out_headers: list[tuple[str, str]],
        decoder: Decoder,
        processor: Transformer,
        encoder: Encoder,
        send: Send,
        deadline: Deadline,
    ) -> None:
        """mode = "buffered": the whole body is read and rewritten before anything is sent (A/B only)."""
        cap = self.limits.max_buffered_body_bytes
        parts: list[bytes] = []
        size = 0
        try:
            with deadline:
                while True:
                    deadline.after(self.timeouts.idle)
                    chunk = await resp.read()
                    deadline.clear()
                    if not chunk:
                        break
                    for piece in decoder.feed_pieces(chunk):
                        out = encoder.feed(processor.feed(piece))
                        size += len(out)
                        if size > cap:
                            raise UpstreamFailed(502, "buffer_cap", f"body exceeds max_buffered_body_bytes={cap}")
                        parts.append(out)
            rest = processor.feed(decoder.finish()) + processor.finish()
            parts.append(encoder.feed(rest) + encoder.finish())
        except TimeoutError:
            raise UpstreamFailed(504, "idle_timeout", "origin stalled mid-body") from None
        except PipelineError as exc:
            raise UpstreamFailed(502, exc.kind, f"origin body unusable: {exc}") from None
        except OriginError as exc:
            raise UpstreamFailed(502, exc.kind, f"origin body failed: {exc}") from None
        body = b"".join(parts)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": encode_headers([*out_headers, ("content-length", str(len(body)))]),
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})


def _raw_headers(resp: OriginResponse) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers]
