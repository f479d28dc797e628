"""The relay: the chosen upstream's answer out to the client as it arrives, with taps watching from the side.

Owns everything after the commit: the byte relay (same bytes, same order; SSE event-aligned so that a
failure can be framed on a real event boundary; events over ``tap_max_event_bytes`` pass straight
through), the translated relay (each complete upstream event through the route's ``StreamTranslator``
and flushed at once; a whole JSON answer through the route's ``whole``; an error answer re-shaped into
the client's error format with the upstream's status and rate-limit headers), the response cap, the idle
timeout between upstream reads (``edge.deadline.Deadline``, armed only while a read waits), usage
accounting from the taps, breaker success/failure after the commit, and how a failure after the commit
ends: a byte relay sends the client protocol's error event on identity SSE and then aborts the
connection (``StreamAborted``); a translated stream sends the error event and ENDS CLEANLY.

Invariant: taps (``SseTap``/``JsonTap``; a translated stream's translator reads usage itself, from the
provider's events) watch from the side and never delay bytes; only the SSE
event alignment holds an incomplete event until its end. The upstream response is released by the
caller (a disconnect cancels the task; the release then closes the upstream connection once).

Must not know about candidates, retries, credentials or the server's dispatch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from sluicegate.config.inference import InferenceSettings
from sluicegate.edge.asgi import ResponseAborted, Send
from sluicegate.inference import metrics as m
from sluicegate.inference.attempts import DROP_RESPONSE, Chosen, Exchange, header
from sluicegate.inference.protocol import Api, error_body, stream_error_event
from sluicegate.inference.pump import Pump
from sluicegate.inference.routing import Router, TargetState
from sluicegate.inference.sse import JsonTap, SseTap, Usage
from sluicegate.inference.translate import Ctx, Route, StreamOverflow, synth, translate_error
from sluicegate.teams.governor import CURRENT
from sluicegate.upstream.errors import OriginError
from sluicegate.upstream.http1 import OriginResponse

log = logging.getLogger("sluicegate.inference")

# Upstream response headers a translated answer never relays: framing, encoding and type are ours now.
_DROP_TRANSLATED = DROP_RESPONSE | {b"content-length", b"content-type", b"content-encoding"}
_MAX_ERROR_BODY = 64 * 1024
_SSE_HEADERS = [(b"x-accel-buffering", b"no"), (b"cache-control", b"no-cache")]
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class StreamAborted(ResponseAborted):
    """Raised after the response started and the upstream failed: the server must abort the connection."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"inference stream aborted: {kind}")
        self.kind = kind


class _CapExceeded(Exception):
    pass


def _feeder(tap: JsonTap | None) -> Callable[[bytes], bytes]:
    """The pump's step for a relay without event alignment: the JSON tap watches, the bytes go on as they are."""
    if tap is None:
        return _same

    def step(chunk: bytes) -> bytes:
        tap.feed(chunk)
        return chunk

    return step


def _same(chunk: bytes) -> bytes:
    return chunk


class Relay:
    """Writes a chosen candidate's answer to the client (byte relay or translated) and accounts for it."""

    def __init__(self, cfg: InferenceSettings, router: Router, meters: m.Meters,
                 id_header: str = "x-request-id") -> None:
        self.cfg = cfg
        # The provider's own request id header is not relayed: the client gets ours, once (the provider's
        # id is in the upstream span / log).
        own = id_header.lower().encode("latin-1")
        self.drop = DROP_RESPONSE | {own}
        self.drop_translated = _DROP_TRANSLATED | {own}
        self.router = router
        self.meters = meters
        self.last_usage: Usage | None = None  # usage of the most recent finished exchange (tests, debugging)
        self.pushbacks = 0  # streamed relays that met client backpressure (inference.pump), for tests, debugging
        self.direct_chunks = 0  # chunks written through the server's BODY_WRITE (inference.flow), likewise

    # ---- shared -------------------------------------------------------------------------------

    def _wait(self, ex: Exchange, idle: float, end: float) -> None:
        """Bound the upstream read about to start: the idle timeout, or what is left of the total cap."""
        dl = ex.deadline
        if end:
            left = end - time.perf_counter()
            dl.after(min(idle, left) if left > 0 else 0.0)
        else:
            dl.after(idle)

    def _failed(self, ch: Chosen, kind: str) -> None:
        m.STREAM_ERRORS.labels(ch.provider.name, kind).inc()
        if self.router.failure(ch.target):
            m.BREAKER_OPEN.labels(ch.provider.name).inc()
            self.meters.breaker(ch.target, 1)

    def _ok(self, t: TargetState, ch: Chosen) -> None:
        if t.failures:
            self.meters.breaker(t, 0)  # was failing (perhaps open): closed again
        self.router.success(t)
        ch.provider.m_ok.inc()

    def account(self, ex: Exchange, provider: str, tap: SseTap | JsonTap | Usage | None, status: int,
                failure: str) -> None:
        """Count the outcome and the provider's own token figures (from a tap, or a translator's ``usage``)."""
        usage: Usage | None = None
        if isinstance(tap, JsonTap):
            usage = tap.finish()
        elif isinstance(tap, SseTap):
            usage = tap.usage
        else:
            usage = tap
        model = ex.mfield.model
        outcome = failure or ("ok" if status < 400 else "upstream_status")
        self.meters.requests(ex.api.value, model, outcome).inc()
        if usage is not None:
            if usage.input_tokens is not None:
                self.meters.tokens(model, provider, "input").inc(usage.input_tokens)
            if usage.output_tokens is not None:
                self.meters.tokens(model, provider, "output").inc(usage.output_tokens)
        self.last_usage = usage
        ticket = CURRENT.get()
        if ticket is not None:  # team governance settles from this usage when the request ends
            ticket.observe(usage, provider, status, outcome)
        info = ex.info
        if info is not None and usage is not None:
            info.tokens_in = usage.input_tokens
            info.tokens_out = usage.output_tokens
        # The access log line carries model, provider, status, error and tokens (``info`` above); this line
        # repeats it for debugging only (at INFO it was one more formatted line per request on stderr).
        if log.isEnabledFor(logging.DEBUG):
            log.debug("inference %s api=%s model=%s provider=%s status=%d outcome=%s ms=%.1f in=%s out=%s",
                     ex.request_id, ex.api.value, model, provider, status, outcome,
                     (time.perf_counter() - ex.started) * 1000,
                     usage.input_tokens if usage else None, usage.output_tokens if usage else None)

    # ---- byte relay ---------------------------------------------------------------------------

    async def passthrough(self, send: Send, ex: Exchange, ch: Chosen) -> None:
        resp = ch.resp
        prov = ch.provider
        headers: list[tuple[bytes, bytes]] = []
        ctype = b""
        encoded = False
        drop = self.drop
        for k, v in resp.headers:
            name = k.lower()
            if name in drop:
                continue
            if name == b"content-type":
                ctype = v.lower()
            elif name == b"content-encoding" and v.strip().lower() not in (b"", b"identity"):
                encoded = True
            headers.append((name, v))
        headers += ex.extra
        sse = ctype.startswith(b"text/event-stream")
        if sse:
            headers += _SSE_HEADERS
        tap: SseTap | JsonTap | None = None
        if not encoded:
            if sse:
                tap = SseTap(self.cfg.tap_max_event_bytes)
            elif ctype.startswith(b"application/json"):
                tap = JsonTap()
        await send({"type": "http.response.start", "status": resp.status, "headers": headers})
        cap = self.cfg.max_response_bytes
        total = 0
        chunk = ch.first
        kind = ""
        sse_tap = tap if isinstance(tap, SseTap) else None
        read = resp.read
        at_eof = resp.at_eof
        ready = resp.ready
        final = b""
        head_only = ex.method == "HEAD"
        dl = ex.deadline
        dl.expired = False  # (a timed-out attempt before this one)
        idle = prov.idle
        end = ex.started + prov.total if prov.total else 0.0
        pump: Pump | None = None
        if not head_only:  # the stream's body from the provider's data callback (inference.pump)
            step = sse_tap.split if sse_tap is not None else _feeder(tap if isinstance(tap, JsonTap) else None)
            pump = Pump(resp, send, step, cap, dl, idle, end, ex.write, ex.info)
        try:
            if chunk:
                prov.m_first_byte.observe(time.perf_counter() - ex.started)
            with dl:
                while True:
                    if chunk:
                        total += len(chunk)
                        if total > cap:
                            raise _CapExceeded
                        if sse_tap is not None:
                            # Event-aligned relay: the same bytes in the same order, but an incomplete event
                            # waits for its end, so a failure can always be framed on a real boundary.
                            chunk = sse_tap.split(chunk)
                        elif tap is not None:
                            tap.feed(chunk)
                    if head_only or at_eof():
                        # Nothing more can come: the last bytes leave with the end of the response (one write).
                        final = chunk + sse_tap.held() if sse_tap is not None else chunk
                        break
                    if chunk:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    if ready():
                        chunk = await read()  # already there: no wait to bound
                    elif pump is not None:
                        # Until the provider's answer ends or fails (or the client pushes back), its bytes go out
                        # from the connection's data callback; then the end, or what is left, is read here.
                        pump.arm()
                        total = await pump.wait(total)
                        dl.clear()
                        if pump.cap_exceeded:
                            raise _CapExceeded
                        chunk = b""
                        if not ready():
                            continue  # (back after the client's backpressure)
                        chunk = await read()
                    else:
                        self._wait(ex, idle, end)
                        chunk = await read()
                        dl.clear()
                    if not chunk:
                        final = sse_tap.held() if sse_tap is not None else b""
                        break
        except _CapExceeded:
            kind = "response_cap"
        except TimeoutError:
            kind = "idle_timeout"
        except OriginError:
            kind = "upstream_reset"
        finally:
            if pump is not None:
                pump.close()
                if pump.pushbacks:
                    self.pushbacks += 1
                self.direct_chunks += pump.written
        if kind:
            resp.release()
            self._failed(ch, kind)
            self.account(ex, prov.name, tap, resp.status, kind)
            if isinstance(tap, SseTap):
                # Identity SSE: close the current event, then one error event in the client's own shape.
                event = stream_error_event(ex.api, f"upstream stream failed: {kind}", kind)
                closing = b"\n\n" if tap.skipping else b""  # held bytes were never sent
                with contextlib.suppress(Exception):
                    await send({"type": "http.response.body", "body": closing + event, "more_body": True})
            raise StreamAborted(kind)
        if resp.status < 400:
            self._ok(ch.target, ch)
        else:
            m.ATTEMPTS.labels(prov.name, f"status_{resp.status}").inc()
        # Accounted before the end goes out: whoever sees the response complete sees its usage recorded.
        self.account(ex, prov.name, tap, resp.status, "")
        await send({"type": "http.response.body", "body": final, "more_body": False})

    # ---- translated relay ---------------------------------------------------------------------

    def _headers(self, resp: OriginResponse, extra: list[tuple[bytes, bytes]], ctype: bytes,
                 dropped: set[str]) -> list[tuple[bytes, bytes]]:
        drop = self.drop_translated
        out = [(k.lower(), v) for k, v in resp.headers if k.lower() not in drop]
        out.append((b"content-type", ctype))
        if dropped:
            out.append((b"x-sluicegate-dropped", ",".join(sorted(dropped)).encode()))
        return out + extra

    async def _read_all(self, ex: Exchange, ch: Chosen, limit: int) -> tuple[bytes, int, str]:
        """The rest of the answer after ``ch.first``, up to ``limit`` bytes: (bytes, size seen, failure)."""
        resp = ch.resp
        parts = [ch.first]
        size = len(ch.first)
        failure = ""
        end = ex.started + ch.provider.total if ch.provider.total else 0.0
        ex.deadline.expired = False
        try:
            with ex.deadline:
                while not resp.at_eof():
                    self._wait(ex, ch.provider.idle, end)
                    chunk = await resp.read()
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > limit:
                        failure = "response_cap"
                        break
                    parts.append(chunk)
        except TimeoutError:
            failure = "idle_timeout"
        except OriginError:
            failure = "upstream_reset"
        return b"".join(parts), size, failure

    async def translated(self, send: Send, ex: Exchange, ch: Chosen) -> None:
        prep = ch.prepared
        assert prep.route is not None and prep.ctx is not None
        route, ctx = prep.route, prep.ctx
        resp, prov, api = ch.resp, ch.provider, ex.api
        m.TRANSLATED.labels(route.client.value, route.upstream.value, "yes" if ctx.dropped else "no").inc()
        ctype = (header(resp.headers, b"content-type") or b"").lower()
        if ch.first:
            prov.m_first_byte.observe(time.perf_counter() - ex.started)
        if resp.status >= 400 or not (ctype.startswith(b"text/event-stream") or ctype.startswith(b"application/json")):
            # An error answer (or something we cannot parse): the client's error shape, the upstream's status.
            raw, _, _ = await self._read_all(ex, ch, _MAX_ERROR_BODY)
            status = resp.status if resp.status >= 400 else 502
            status, body = translate_error(status, raw[:_MAX_ERROR_BODY], api.family)
            m.ATTEMPTS.labels(prov.name, f"status_{resp.status}").inc()
            self.account(ex, prov.name, None, status, "")
            await send({"type": "http.response.start", "status": status,
                        "headers": [*self._headers(resp, [], b"application/json", set()),
                                    (b"content-length", str(len(body)).encode()), *ex.extra]})
            await send({"type": "http.response.body", "body": body})
            return
        if ctype.startswith(b"application/json"):
            await self._whole(send, ex, ch, route, ctx)
            return
        # The translator decodes every upstream event anyway: it reads the provider's usage on the way.
        tr = route.stream(ctx, self.cfg.tap_max_event_bytes)
        headers = self._headers(resp, ex.extra, b"text/event-stream; charset=utf-8", ctx.dropped)
        headers += _SSE_HEADERS
        await send({"type": "http.response.start", "status": resp.status, "headers": headers})
        cap = self.cfg.max_response_bytes
        total = 0
        kind = ""
        chunk = ch.first
        read, ready, at_eof = resp.read, resp.ready, resp.at_eof
        dl = ex.deadline
        dl.expired = False
        idle = prov.idle
        end = ex.started + prov.total if prov.total else 0.0
        last = b""  # the final events: they leave with the end of the response, in one write
        try:
            with dl:
                while True:
                    if chunk:
                        total += len(chunk)
                        if total > cap:
                            kind = "response_cap"
                            break
                        out = tr.feed(chunk)
                        if tr.done or at_eof():
                            last = out  # the upstream's answer is over (its terminator, error event or EOF)
                            break
                        if out:
                            await send({"type": "http.response.body", "body": out, "more_body": True})
                    if ready():
                        chunk = await read()
                    else:
                        self._wait(ex, idle, end)
                        chunk = await read()
                        dl.clear()
                    if not chunk:
                        break
        except StreamOverflow:
            kind = "event_too_large"
        except TimeoutError:
            kind = "idle_timeout"
        except OriginError:
            kind = "upstream_reset"
        if kind:
            resp.release()
            self._failed(ch, kind)
            tail = last + tr.fail(f"upstream stream failed: {kind}", kind)
        else:
            tail = last + tr.finish()
            if tr.saw_error:
                m.STREAM_ERRORS.labels(prov.name, "upstream_error_event").inc()
            else:
                self._ok(ch.target, ch)
        late = tr.dropped - ctx.dropped
        if late:  # dropped after the headers left: said as an SSE comment (inert to every client)
            tail += b": x-sluicegate-dropped " + ",".join(sorted(late)).encode() + b"\n\n"
            log.info("inference %s dropped in translation: %s", ex.request_id, ",".join(sorted(late)))
        self.account(ex, prov.name, tr.usage, resp.status, kind)
        # A translated stream always ends cleanly: the client protocol's own terminator after any error event.
        await send({"type": "http.response.body", "body": tail, "more_body": False})

    async def _whole(self, send: Send, ex: Exchange, ch: Chosen, route: Route, ctx: Ctx) -> None:
        cap = self.cfg.max_response_bytes
        resp, prov, api = ch.resp, ch.provider, ex.api
        raw, size, failure = await self._read_all(ex, ch, cap)
        tap = JsonTap(cap)
        tap.feed(raw)
        obj: Any = None
        if not failure:
            try:
                obj = json.loads(raw)
            except ValueError:
                failure = "invalid_json"
        if failure or not isinstance(obj, dict):
            failure = failure or "invalid_json"
            resp.release()
            self._failed(ch, failure)
            self.account(ex, prov.name, tap, 502, failure)
            body = error_body(api.family, 502, f"upstream answer failed: {failure}", failure)
            await send({"type": "http.response.start", "status": 502,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()), *ex.extra]})
            await send({"type": "http.response.body", "body": body})
            return
        self._ok(ch.target, ch)
        self.account(ex, prov.name, tap, resp.status, "")
        if ctx.stream:
            # The client asked for a stream and the provider answered whole: replay the answer as the
            # provider's own stream through the streaming translator, so the client gets the stream it asked for.
            tr = route.stream(ctx, max(self.cfg.tap_max_event_bytes, size + 1024))
            replay = synth.messages_events(obj) if route.upstream is Api.MESSAGES else synth.chat_events(obj)
            data = tr.feed(replay) + tr.finish()
            headers = self._headers(resp, ex.extra, b"text/event-stream; charset=utf-8", ctx.dropped | tr.dropped)
            await send({"type": "http.response.start", "status": resp.status,
                        "headers": [*headers, (b"content-length", str(len(data)).encode()),
                                    (b"cache-control", b"no-cache")]})
            await send({"type": "http.response.body", "body": data})
            return
        body = _dumps(route.whole(obj, ctx)).encode()
        await send({"type": "http.response.start", "status": resp.status,
                    "headers": [*self._headers(resp, [], b"application/json", ctx.dropped),
                                (b"content-length", str(len(body)).encode()), *ex.extra]})
        await send({"type": "http.response.body", "body": body})
