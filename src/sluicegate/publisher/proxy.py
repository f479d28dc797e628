"""The publisher proxy: one request in, one origin request out, the response relayed as it arrives.

Order of work for a request:
  1. own checks (method, Host against ``public_hosts``) -> 400/405/421 without calling the origin;
  2. origin request: method, raw path + query, streamed body, transformed headers; with
     ``map_requests`` the query values, Referer/Origin/Cookie and form bodies are mapped public -> origin
     (``inbound``: the query is mapped in place, never re-quoted; a form body is read up to
     ``request_map_hold_bytes`` first so that a short one keeps an exact Content-Length);
  3. at the origin's response head: ``gate.classify`` picks the route and the head is sent at once;
  4. body relay per route (PassThrough / Stream / Bodiless / Buffered).

Failures before the head is sent become a 502 (connect/protocol) or 504 (first-byte timeout).
After it, the connection is aborted (``ResponseAborted``): the client must see an incomplete
response, never a clean-looking truncated one. A client disconnect cancels the origin request at
once (``ClientWatch``). This module moves bytes; rewriting lives in ``pipeline``.

Fairness (issue 24, docs/fairness.md): a body transform works in decoded pieces of ``[event_loop]
piece_bytes`` and, once it has used ``slice_ms`` of CPU, sends what it has and waits for its turn in the
worker's ``slicing.WorkLane``: other requests, and the disconnect watcher, run between slices, so a client
that leaves stops the work within one slice. Work is bounded per response (``[limits]
max_decoded_body_bytes``, ``max_decoded_bytes_without_output``; past either: 502 before the commit,
abort after). The body's coding follows the client's ``Accept-Encoding`` (``coding``): a coding the client
does not accept is decoded (and a rewritten body re-encoded to one it does).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator

from sluicegate import gate
from sluicegate.config.model import Settings
from sluicegate.edge.asgi import (
    ClientGone,
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
from sluicegate.firstparty.page import PageRewriting
from sluicegate.gate import Route
from sluicegate.identity.edge import EdgeIdentity
from sluicegate.observability import metrics
from sluicegate.pipeline import Identity, PipelineError, Transformer, WorkBoundExceeded
from sluicegate.pipeline.codecs import Decoder, Encoder, decoder_for, encoder_for
from sluicegate.pipeline.hosts import HostRewriter, OriginMatcher
from sluicegate.publisher import coding, inbound
from sluicegate.publisher import headers as hdr
from sluicegate.publisher.processors import build_processor
from sluicegate.publisher.slicing import Slice, lane_for
from sluicegate.upstream.errors import BodySourceStopped, OriginError
from sluicegate.upstream.http1 import OriginPool, OriginResponse

log = logging.getLogger("sluicegate.publisher")

_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "TRACE"})
_SEND_EVERY = 0.008  # s: mid-body output sent at a pause at most this often (pending output stays < 8 ms of work)
_MAX_PENDING_PIECES = 64  # encoded pieces held before they are sent regardless (~1 MiB at 16 KiB pieces)
_RSC_HEADERS = ("rsc", "next-router-state-tree", "next-router-prefetch", "next-router-segment-prefetch")


# What a client is told when the origin failed before the response head (details go to the log only).
_PUBLIC_REASON = {
    "connect": "cannot connect to origin",
    "first_byte_timeout": "origin did not answer in time",
    "idle_timeout": "origin stalled",
    "bad_response": "invalid response from origin",
    "disconnected": "origin closed the connection",
    # work bounds (pipeline.WorkBoundExceeded): the kind is the [limits] key that was hit
    "max_decoded_body_bytes": "origin body needs too much work (max_decoded_body_bytes)",
    "max_decoded_bytes_without_output": "origin body needs too much work (max_decoded_bytes_without_output)",
}


class UpstreamFailed(Exception):
    def __init__(self, status: int, kind: str, message: str, *, logged: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.logged = logged  # already logged and counted where it was raised


class _BodyWork:
    """One response's transform state: the stages, its CPU slice, and the bound on work without output."""

    __slots__ = ("decoder", "encoder", "last_send", "pending", "processor", "quiet", "quiet_cap", "slice", "unflushed")

    def __init__(
        self, decoder: Decoder, processor: Transformer, encoder: Encoder, slice_: Slice, quiet_cap: int
    ) -> None:
        self.decoder = decoder
        self.processor = processor
        self.encoder = encoder
        self.slice = slice_
        self.quiet = 0  # decoded bytes consumed since the processor last emitted output
        self.quiet_cap = quiet_cap
        self.pending: list[bytes] = []  # encoded output not yet sent
        self.unflushed = False  # the encoder holds input not yet flushed
        self.last_send = 0.0  # perf_counter of the last mid-body send at a pause

    def take(self) -> bytes:
        """Everything encoded so far, flushed so the client can decode it on arrival."""
        pending = self.pending
        if self.unflushed:
            pending.append(self.encoder.flush())
            self.unflushed = False
        if not pending:
            return b""
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        return data

    def tail(self) -> bytes:
        """The end of the body: what is pending, the stages' held bytes, the coding's trailer."""
        rest = self.processor.feed(self.decoder.finish()) + self.processor.finish()
        out = self.pending
        out.append(self.encoder.compress(rest))
        out.append(self.encoder.finish())
        self.unflushed = False
        data = b"".join(out)
        out.clear()
        return data


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
        self.id_header = settings.server.request_id_header
        ev = settings.event_loop
        self.slice_s = ev.slice_ms / 1000.0
        self.piece_bytes = ev.piece_bytes
        self._rewriters: dict[tuple[str, str], HostRewriter] = {}
        self._inbound: dict[tuple[str, str], inbound.InboundMapper | None] = {}
        # issue 17 hooks: consent-gated edge identity and [first_party] rewrite_domains (None = off)
        self.identity = EdgeIdentity.from_settings(settings.identity) if settings.identity.enabled else None
        self.fp_pages = PageRewriting.from_settings(settings)

    def _inbound_mapper(self, scheme: str, host: str) -> inbound.InboundMapper | None:
        """The public -> origin mapping for requests on (scheme, public host); ``None`` when it is off."""
        if not self.settings.publisher.map_requests:
            return None
        key = (scheme, host.lower())
        if key not in self._inbound:
            if len(self._inbound) >= 256:
                self._inbound.clear()
            self._inbound[key] = inbound.InboundMapper.build(
                scheme, key[1], self.origin, self.settings.publisher.origin_host_header
            )
        return self._inbound[key]

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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        info = scope.get("sluicegate.info")
        request_id = info.request_id if info is not None else os.urandom(8).hex()
        rid = [(self.id_header, request_id)]
        method = scope["method"].upper()
        req_headers = header_list(scope)
        if method == "CONNECT":
            await send_simple(
                send, 405, b"CONNECT is not supported: this is a reverse proxy\n", rid
            )
            return
        host = next((v for k, v in req_headers if k.lower() == "host"), "").strip()
        if not host or not hdr.valid_host(host):
            await send_simple(send, 400, b"Missing or invalid Host header\n", rid)
            return
        scheme = scope.get("scheme", "http")
        client = scope.get("client") or ("", 0)
        facts = hdr.client_facts(client[0], scheme, host, req_headers, self.trusted)
        if not hdr.host_allowed(host, facts.scheme, self.public_hosts):
            await send_simple(
                send, 421, b"Misdirected request: this host is not served here\n", rid
            )
            return
        if await self._oversized_head(req_headers, send, request_id):
            return
        rewriter = self._rewriter(facts.scheme, host)
        up_headers = hdr.upstream_request_headers(
            req_headers, facts, self.origin, self.settings.publisher.origin_host_header, request_id,
            id_header=self.id_header,
        )
        if info is not None and info.span is not None:  # tracing on: a client span, carried by traceparent
            info.upstream_span, carried = info.tracer.client_span(
                info.span, f"{method} origin", {"server.address": self.origin.host, "server.port": self.origin.port}
            )
            up_headers = [(k, v) for k, v in up_headers if k.lower() not in ("traceparent", "tracestate")] + carried
        edge = self.identity.begin(req_headers, facts.ip, facts.trusted_peer) if self.identity else None
        if edge is not None:
            up_headers = edge.upstream(up_headers)
            send = edge.wrap(send)  # Set-Cookie goes into the response head, before any body byte
        # HTTP/1.1: a request has a body only if it says so (Transfer-Encoding or Content-Length > 0).
        has_body = any(
            (k.lower() == "transfer-encoding") or (k.lower() == "content-length" and v.strip() not in ("", "0"))
            for k, v in req_headers
        )
        navigation = not any(k.lower() in _RSC_HEADERS for k, _ in req_headers)
        mapper = self._inbound_mapper(facts.scheme, host)
        form = None
        if mapper is not None:
            up_headers = mapper.map_headers(up_headers)
            if has_body:
                form = mapper.body_mapper(
                    req_headers, self.limits.request_map_hold_bytes, self.limits.map_request_body_bytes
                )
        accepted = coding.Accepted.from_headers(req_headers)

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
                if mapper is not None:
                    query = mapper.map_query(query)
                target += "?" + query.decode("latin-1")
            try:
                with deadline:
                    deadline.after(self.timeouts.first_byte)
                    body = _client_body(watch) if has_body else None
                    if body is not None and form is not None:
                        body, length = await inbound.prepare_body(body, form, self.limits.request_map_hold_bytes)
                        up_headers = [(k, v) for k, v in up_headers if k.lower() != "content-length"]
                        if length is not None:
                            up_headers.append(("content-length", str(length)))
                    # the target is the client's bytes, not re-quoted (query values mapped in place)
                    resp = await pool.request(method, target, up_headers, body)
            except TimeoutError:
                raise UpstreamFailed(
                    504, "first_byte_timeout", f"origin sent no response head within {self.timeouts.first_byte:g}s"
                ) from None
            except OriginError as exc:
                raise UpstreamFailed(502, exc.kind, str(exc)) from None
            waited = time.perf_counter() - started
            metrics.PUBLISHER_TTFB.observe(waited)
            try:
                origin_headers = _raw_headers(resp)
                decision = gate.classify(method, resp.status, origin_headers)
                if info is not None:
                    info.upstream_s = waited
                    info.upstream_status = resp.status
                    if info.upstream_span is not None:
                        info.tracer.end_client(info.upstream_span, resp.status)
                        info.upstream_span = None
                    info.route = decision.route.value
                    info.kind = decision.kind.value
                await self._relay(
                    resp,
                    origin_headers,
                    decision,
                    method,
                    rewriter,
                    navigation,
                    send,
                    request_id,
                    deadline,
                    accepted,
                    f"{method} {scope.get('path', '')}",
                    if_none_match=next((v for k, v in req_headers if k.lower() == "if-none-match"), ""),
                )
            finally:
                resp.release()
        except UpstreamFailed as exc:
            if not exc.logged:
                metrics.publisher_error("before_commit", exc.kind).inc()
                log.warning("request %s: %s -> %d", request_id, exc, exc.status)
            if info is not None:
                info.error = exc.kind
            reason = _PUBLIC_REASON.get(exc.kind, "bad gateway" if exc.status == 502 else "origin failed")
            await send_simple(send, exc.status, f"{reason} (request id {request_id})\n".encode(), rid)
        except asyncio.CancelledError:
            if watch.disconnected:
                metrics.publisher_error("client", "disconnect").inc()
                log.info("request %s: client disconnected; origin request cancelled", request_id)
                if info is not None:
                    info.error = "client_gone"
                return
            raise
        except (ClientGone, BodySourceStopped):
            metrics.publisher_error("client", "disconnect").inc()
            log.info("request %s: client disconnected while sending its body", request_id)
            if info is not None:
                info.error = "client_gone"
        finally:
            deadline.close()
            watch.stop()

    async def _oversized_head(self, req_headers: list[tuple[str, str]], send: Send, request_id: str) -> bool:
        size = sum(len(k) + len(v) + 4 for k, v in req_headers)
        if size > self.limits.max_request_header_bytes:
            await send_simple(send, 431, b"Request header fields too large\n", [(self.id_header, request_id)])
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
        accepted: coding.Accepted,
        label: str,
        if_none_match: str = "",
    ) -> None:
        status = resp.status
        out_headers = hdr.downstream_response_headers(
            origin_headers,
            rewriter,
            self.origin,
            request_id,
            id_header=self.id_header,
            origin_host_header=self.settings.publisher.origin_host_header,
            public_hosts=self.public_hosts,
            aliases=self.settings.publisher.origin_aliases,
        )
        route = decision.route
        if route is Route.STREAM and self.settings.publisher.mode == "buffered":
            route = Route.BUFFERED
        if route is Route.STREAM or route is Route.BUFFERED:
            metrics.publisher_rewrite(decision.kind.value).inc()

        if route is Route.BODILESS:
            if method == "HEAD" and gate.classify("GET", status, origin_headers).route is Route.STREAM:
                # HEAD answers with the headers GET would send: GET rewrites this body, so the origin's
                # Content-Length and strong ETag describe bytes the client would never receive.
                out_headers = hdr.for_rewritten_body(out_headers)
            elif status == 304:
                out_headers = hdr.for_not_modified(out_headers, if_none_match)
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": encode_headers(gate.bodiless_headers(status, out_headers)),
                }
            )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return

        in_coding = decision.encoding
        if route is Route.PASS_THROUGH:
            undo = coding.decodable(coding.content_codings(origin_headers))
            if undo is None:
                await send({"type": "http.response.start", "status": status, "headers": encode_headers(out_headers)})
                await self._pump(resp, send, request_id, deadline)
                return
            if accepted.accepts(undo):
                out_headers = coding.ensure_vary(out_headers)
                await send({"type": "http.response.start", "status": status, "headers": encode_headers(out_headers)})
                await self._pump(resp, send, request_id, deadline)
                return
            # A coding the client refuses (an origin that ignored Accept-Encoding): decode, change nothing else.
            route, in_coding = Route.STREAM, undo
            processor: Transformer = Identity()
            out_coding = ""
            out_headers = coding.recoded_headers(out_headers, "")
        else:
            ctype = next((v for k, v in reversed(out_headers) if k.lower() == "content-type"), "")
            # [first_party] rewrite_domains: on the page's own rewriter (one pass) unless what the
            # origin rules write could name a rewrite domain (then a second pass over the output)
            fp = self.fp_pages
            one_pass = fp is not None and fp.one_pass(rewriter.public_authority)
            processor = build_processor(
                decision.kind, rewriter, self.settings, navigation_request=navigation, content_type=ctype,
                extra_html_rules=fp.install if fp is not None and one_pass else None,
            )
            if fp is not None and not one_pass and decision.kind is gate.Kind.HTML:
                processor = fp.wrap(processor)
            out_headers = hdr.for_rewritten_body(out_headers)
            out_coding = in_coding if accepted.accepts(in_coding) else accepted.best_encoding()
            if out_coding != in_coding:
                out_headers = coding.recoded_headers(out_headers, out_coding)
            elif in_coding:
                out_headers = coding.ensure_vary(out_headers)

        work = _BodyWork(
            decoder_for(in_coding, self.limits.max_decoded_body_bytes, self.piece_bytes),
            processor,
            encoder_for(out_coding, **self.codec_levels),
            Slice(lane_for(asyncio.get_running_loop()), self.slice_s, request_id, label),
            self.limits.max_decoded_bytes_without_output,
        )
        if route is Route.BUFFERED:
            await self._buffered(resp, status, out_headers, work, send, deadline, request_id)
            return

        await send({"type": "http.response.start", "status": status, "headers": encode_headers(out_headers)})
        await self._stream(resp, send, request_id, deadline, work)

    async def _transform(self, chunk: bytes, work: _BodyWork, send: Send | None) -> None:
        """Decode -> process -> encode one read, piece by piece; between slices send what is ready (when
        ``send`` is given) and wait for this response's next turn of the loop."""
        processor = work.processor
        encoder = work.encoder
        pending = work.pending
        sl = work.slice
        for piece in work.decoder.feed_pieces(chunk):
            out = processor.feed(piece)
            if out:
                work.quiet = 0
                pending.append(encoder.compress(out))
                work.unflushed = True
            else:
                work.quiet += len(piece)
                if work.quiet > work.quiet_cap:
                    raise WorkBoundExceeded(
                        "max_decoded_bytes_without_output",
                        f"{work.quiet} decoded bytes consumed without output "
                        f"(max_decoded_bytes_without_output={work.quiet_cap})",
                    )
            if sl.spent():
                # What is ready leaves at a pause at most every _SEND_EVERY s: a sync flush and a socket write
                # per 1 ms slice cost ~2 % of the transform's CPU; a client sees progress at >= 100 Hz anyway.
                if send is not None and (now := time.perf_counter()) - work.last_send >= _SEND_EVERY:
                    work.last_send = now
                    data = work.take()
                    if data:
                        await send({"type": "http.response.body", "body": data, "more_body": True})
                await sl.pause()
            elif len(pending) >= _MAX_PENDING_PIECES and send is not None:
                # (unsliced, or a very fast transform): the output held is bounded all the same
                data = work.take()
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})

    async def _stream(
        self, resp: OriginResponse, send: Send, request_id: str, deadline: Deadline, work: _BodyWork
    ) -> None:
        """The Stream route: the body is transformed as it arrives, in slices; abort the client on failure."""
        idle = self.timeouts.idle
        relayed_in = 0
        readany = resp.read
        final = b""
        sl = work.slice
        try:
            with deadline:
                while True:
                    waits = not resp.ready()
                    if waits:
                        sl.idle()
                    deadline.after(idle)
                    chunk = await readany()
                    deadline.clear()
                    if waits:
                        sl.restart()  # the loop ran while we waited: this slice's budget starts afresh
                    if not chunk:
                        break
                    relayed_in += len(chunk)
                    await self._transform(chunk, work, send)
                    if resp.at_eof():
                        continue  # what is pending leaves with the end of the response (one write)
                    data = work.take()
                    if data:
                        await send({"type": "http.response.body", "body": data, "more_body": True})
            final = work.tail()
        except TimeoutError:
            self._abort(request_id, "idle_timeout", f"origin sent nothing for {idle:g}s mid-body")
        except WorkBoundExceeded as exc:
            self._work_bound(request_id, exc, "after_commit")
            raise ResponseAborted(str(exc)) from None
        except PipelineError as exc:
            self._abort(request_id, exc.kind, str(exc))
        except OriginError as exc:
            self._abort(request_id, exc.kind, f"origin body failed: {exc}")
        finally:
            sl.done()
            metrics.FROM_ORIGIN_BYTES.inc(relayed_in)
        await send({"type": "http.response.body", "body": final, "more_body": False})

    def _work_bound(self, request_id: str, exc: WorkBoundExceeded, stage: str) -> None:
        metrics.publisher_error(stage, exc.kind).inc()
        metrics.work_bound(exc.bound).inc()
        action = "502" if stage == "before_commit" else "aborting the client connection"
        log.warning(
            "request %s: work bound %s hit (origin %s): %s; %s", request_id, exc.bound, self.origin.authority, exc,
            action,
        )

    async def _pump(
        self,
        resp: OriginResponse,
        send: Send,
        request_id: str,
        deadline: Deadline,
    ) -> None:
        """PassThrough: relay body chunks untouched until the origin ends; abort the client on any failure.

        ``idle`` bounds each wait for the origin and nothing else: time spent in ``send`` is the
        client's backpressure, not origin silence.
        """
        idle = self.timeouts.idle
        relayed_in = 0
        last = b""
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
                    if at_eof():
                        # The origin is done: this chunk leaves with the end of the response (one write
                        # instead of two for small bodies); the next read returns b"" and ends the loop.
                        last = chunk
                        continue
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            final = last
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
        aborted = ResponseAborted(message)
        aborted.kind = kind
        raise aborted

    async def _buffered(
        self,
        resp: OriginResponse,
        status: int,
        out_headers: list[tuple[str, str]],
        work: _BodyWork,
        send: Send,
        deadline: Deadline,
        request_id: str,
    ) -> None:
        """mode = "buffered": the whole body is read and rewritten before anything is sent (A/B only)."""
        cap = self.limits.max_buffered_body_bytes
        parts: list[bytes] = []
        size = 0
        try:
            with deadline:
                while True:
                    waits = not resp.ready()
                    if waits:
                        work.slice.idle()
                    deadline.after(self.timeouts.idle)
                    chunk = await resp.read()
                    deadline.clear()
                    if waits:
                        work.slice.restart()
                    if not chunk:
                        break
                    await self._transform(chunk, work, None)
                    for out in work.pending:
                        size += len(out)
                        parts.append(out)
                    work.pending.clear()
                    if size > cap:
                        raise UpstreamFailed(502, "buffer_cap", f"body exceeds max_buffered_body_bytes={cap}")
            parts.append(work.tail())
        except TimeoutError:
            raise UpstreamFailed(504, "idle_timeout", "origin stalled mid-body") from None
        except WorkBoundExceeded as exc:
            self._work_bound(request_id, exc, "before_commit")
            raise UpstreamFailed(502, exc.kind, f"origin body needs too much work: {exc}", logged=True) from None
        except PipelineError as exc:
            raise UpstreamFailed(502, exc.kind, f"origin body unusable: {exc}") from None
        except OriginError as exc:
            raise UpstreamFailed(502, exc.kind, f"origin body failed: {exc}") from None
        finally:
            work.slice.done()
        body = b"".join(parts)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": encode_headers([*out_headers, ("content-length", str(len(body)))]),
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})


async def _client_body(watch: ClientWatch) -> AsyncIterator[bytes]:
    """The client's body in upstream's terms: the client leaving mid-upload is ``BodySourceStopped``."""
    try:
        async for chunk in watch.body():
            yield chunk
    except ClientGone as exc:
        raise BodySourceStopped(str(exc)) from exc


def _raw_headers(resp: OriginResponse) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers]
