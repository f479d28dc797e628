"""Per-request observation around both faces: request id, client IP, timings, bytes, metrics, access log.

Owns: choosing the request id (an incoming valid one is kept when ``[server] request_id_trust`` allows),
the client IP after the trusted-proxy rule, the ``RequestInfo`` record put in ``scope["sluicegate.info"]``
for the faces to fill (route, upstream status, model, tokens ...), and, when the request ends, the
request metrics and one access-log line. Must not know what the faces do with a request.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import random
import re
import time
from typing import Any

from sluicegate.config.model import Settings
from sluicegate.edge.asgi import Message, Receive, Scope, Send, count_sent
from sluicegate.edge.headers import TrustedProxies, forwarded_client
from sluicegate.observability import access, metrics
from sluicegate.observability.tracing import Tracer

log = logging.getLogger("sluicegate")

INFO_KEY = "sluicegate.info"
_VALID_ID = re.compile(rb"^[A-Za-z0-9._:+=/-]{1,128}$")


def new_request_id() -> str:
    """16 hex digits. Not a secret (it is logged and returned), so no system call per request for it."""
    return f"{random.getrandbits(64):016x}"


class Observer:
    """Built once per app from settings; ``begin`` per request, ``finish`` when the handler returns."""

    def __init__(self, settings: Settings) -> None:
        srv = settings.server
        self.id_header = srv.request_id_header.encode("latin-1")
        self.trust = srv.request_id_trust
        self.trusted = TrustedProxies(srv.trusted_proxies)
        self.has_trusted = bool(srv.trusted_proxies)
        self.render = access.renderer(srv.access_log)
        self.metrics = settings.admin.metrics
        self.writer = access.AccessWriter() if self.render is not None else None
        self.tracer = Tracer.from_env()  # None unless OTEL_TRACES_EXPORTER asks for it
        self._faces: dict[str, tuple[Any, Any, Any, Any, Any]] = {}
        self._counters: dict[tuple[str, str, str], Any] = {}
        self._pending: list[tuple[str, str, str, float, float, int, int]] = []
        self._begun: dict[str, int] = {}  # requests started per face since the last ``_write``
        self._scheduled = False

    def begin(self, scope: Scope) -> access.RequestInfo:
        host = ua = ""
        rid = b""
        xff = b""
        id_header = self.id_header
        for name, value in scope.get("headers", ()):
            if name == b"host":
                host = value.decode("latin-1")
            elif name == id_header:
                rid = value
            elif name == b"user-agent":
                ua = value.decode("latin-1")[:512]
            elif name == b"x-forwarded-for":
                xff = value if not xff else xff + b"," + value
        peer = (scope.get("client") or ("", 0))[0] or ""
        trusted_peer = self.has_trusted and peer in self.trusted
        client_ip = forwarded_client(peer, xff.decode("latin-1"), self.trusted) if trusted_peer and xff else peer
        request_id = ""
        if rid and (self.trust == "any" or (self.trust == "trusted_proxies" and trusted_peer)):
            rid = rid.strip()
            if _VALID_ID.match(rid):
                request_id = rid.decode("ascii")
        info = access.RequestInfo(
            request_id or new_request_id(), scope.get("method", ""), scope.get("path", ""), host, client_ip, ua
        )
        scope[INFO_KEY] = info
        return info

    def wrap(self, info: access.RequestInfo, receive: Receive, send: Send) -> tuple[Receive, Send]:
        """``receive``/``send`` that keep ``info``'s status, time to head and byte counts current (a server that
        offers ``edge.asgi.OBSERVE_HOOK`` keeps them itself: ``server.app`` then hands it ``info`` instead)."""

        async def counting_receive() -> Message:
            message = await receive()
            body = message.get("body")
            if body:
                info.bytes_in += len(body)
            return message

        async def observing_send(message: Message) -> None:
            count_sent(info, message)
            await send(message)

        return counting_receive, observing_send

    def tag(self, info: access.RequestInfo, send: Send) -> Send:
        """``send`` that adds the request id header to the response head (the faces add it to theirs; this is for
        the answer of no face)."""
        id_header = self.id_header

        async def tagging_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (id_header, info.request_id.encode())]
            await send(message)

        return tagging_send

    def _face_metrics(self, face: str) -> tuple[Any, Any, Any, Any, Any]:
        """The face's value objects (prometheus-client internals, resolved once): in-flight gauge value,
        duration and first-byte histograms, bytes in / out counter values. ``_write`` updates the values
        directly: the public ``inc``/``observe`` add a validity check and, for histograms, a Python loop
        over the buckets per call."""
        m = self._faces.get(face)
        if m is None:
            m = self._faces[face] = (
                metrics.INFLIGHT.labels(face)._value, metrics.DURATION.labels(face),
                metrics.FIRST_BYTE.labels(face), metrics.BODY_BYTES.labels(face, "in")._value,
                metrics.BODY_BYTES.labels(face, "out")._value,
            )
        return m

    def started(self, info: access.RequestInfo, face: str, scope: Scope) -> None:
        info.face = face
        if self.metrics:  # the in-flight gauge moves by the net change of a loop turn (``_write``)
            begun = self._begun
            begun[face] = begun.get(face, 0) + 1
            if not self._scheduled:
                self._schedule()
        if self.tracer is not None:
            carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())
                       if k in (b"traceparent", b"tracestate")}
            info.tracer = self.tracer
            info.span = self.tracer.server_span(info.method, info.path, face, carrier)

    def finish(self, info: access.RequestInfo, error: BaseException | None = None) -> None:
        duration = time.perf_counter() - info.started
        if error is not None and not info.error:
            info.error = str(getattr(error, "kind", "")) or ("aborted" if info.status else "handler_failed")
        if self.metrics:
            self._record(info, duration)
        if info.span is not None:
            self._end_spans(info)
        if self.render is not None and self.writer is not None:
            self.writer.write(self.render(info, duration))

    def _end_spans(self, info: access.RequestInfo) -> None:
        tracer = info.tracer
        if info.upstream_span is not None:
            tracer.end_client(info.upstream_span, info.upstream_status, info.error or "no_response")
            info.upstream_span = None
        tracer.end_server(info.span, info.status, info.error, {
            "sluicegate.request_id": info.request_id, "sluicegate.route": info.route,
            "sluicegate.upstream_status": info.upstream_status or None, "gen_ai.request.model": info.model,
            "sluicegate.provider": info.provider, "client.address": info.client_ip,
        })

    def flush(self) -> None:
        if self._pending:
            self._write()
        if self.writer is not None:
            self.writer.flush()

    def shutdown(self) -> None:
        self.flush()
        if self.tracer is not None:
            self.tracer.shutdown()

    def _record(self, info: access.RequestInfo, duration: float) -> None:
        """Queue the request's metrics; they are written once per event-loop turn, summed (``_write``)."""
        status = info.status
        self._pending.append((info.face, info.route or ("rejected" if status else "aborted"),
                              _STATUS_CLASS[status // 100] if 0 < status < 600 else _status_class(status),
                              duration, info.ttfb, info.bytes_in, info.bytes_out))
        if not self._scheduled:
            self._schedule()

    def _schedule(self) -> None:
        self._scheduled = True
        try:
            asyncio.get_running_loop().call_soon(self._write)
        except RuntimeError:  # no loop (tools, tests): now
            self._write()

    def _write(self) -> None:
        """Every multi-process value update is a write to a shared file: under load several requests start
        and end in one loop turn, and each counter / bucket / the in-flight gauge is written once for all of
        them instead of once each. Runs before the loop polls again, so a scrape never misses a request whose
        response was sent."""
        self._scheduled = False
        pending, self._pending = self._pending, []
        begun, self._begun = self._begun, {}
        counts: dict[tuple[str, str, str], int] = {}
        per_face: dict[str, list[tuple[float, float, int, int]]] = {}
        for face, route, status_class, duration, ttfb, b_in, b_out in pending:
            key = (face, route, status_class)
            counts[key] = counts.get(key, 0) + 1
            rows = per_face.get(face)
            if rows is None:
                rows = per_face[face] = []
            rows.append((duration, ttfb, b_in, b_out))
        counters = self._counters
        for key, n in counts.items():
            value = counters.get(key)
            if value is None:
                value = counters[key] = metrics.request(*key)._value
            value.inc(n)
        for face in begun.keys() | per_face.keys():
            inflight, hist, first, b_in_c, b_out_c = self._face_metrics(face)
            rows = per_face.get(face, [])
            net = begun.get(face, 0) - len(rows)
            if net:
                inflight.inc(net)
            if not rows:
                continue
            _observe_many(hist, [r[0] for r in rows])
            _observe_many(first, [r[1] for r in rows if r[1] >= 0])
            total_in = sum(r[2] for r in rows)
            total_out = sum(r[3] for r in rows)
            if total_in:
                b_in_c.inc(total_in)
            if total_out:
                b_out_c.inc(total_out)


_STATUS_CLASS = ("0xx", "1xx", "2xx", "3xx", "4xx", "5xx")


def _status_class(status: int) -> str:
    return f"{status // 100}xx" if status else "none"


def _observe_many(hist: Any, values: list[float]) -> None:
    """``observe`` for several values: the sum and each bucket written once (prometheus-client's histogram
    keeps non-cumulative bucket values and its upper bounds sorted, ``+Inf`` last)."""
    if not values:
        return
    bounds = hist._upper_bounds
    if len(values) == 1:
        v = values[0]
        hist._sum.inc(v)
        hist._buckets[bisect.bisect_left(bounds, v)].inc(1)
        return
    buckets: dict[int, int] = {}
    for v in values:
        i = bisect.bisect_left(bounds, v)
        buckets[i] = buckets.get(i, 0) + 1
    hist._sum.inc(sum(values))
    for i, n in buckets.items():
        hist._buckets[i].inc(n)
