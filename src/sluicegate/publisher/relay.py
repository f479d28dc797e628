"""The publisher relay: one origin response to the client, its bytes sent on as they arrive.

Owns, from the origin's response head on: the response head the client gets (``headers``' mapping,
the coding it accepts), the route the gate chose, carried out (Bodiless: the head alone; PassThrough:
each read forwarded untouched; Stream: decode -> rewrite -> encode, in CPU slices) and what a failure
becomes once the head is out.

Invariants:

* **Bytes out as they arrive.** Nothing waits for the end of a body: PassThrough forwards every read;
  Stream sends what each read produced (and, mid-read, at the first pause, then after
  ``_SEND_EVERY_WORK`` of the response's own work or ``_SEND_MAX_GAP`` of wall time; at most
  ``_MAX_PENDING_PIECES`` encoded pieces are ever held). The last read
  leaves with the end of the response (one write, not two, for a small body). A small Stream body whose
  origin bytes are all in hand at the first read (``[limits] one_pass_body_bytes``, at most one piece of
  work) is transformed in one pass and sent with a Content-Length (``publisher.oneshot``): nothing waits
  for it, it had all arrived.
* **Taps watch from the side, never delay bytes.** Metrics (bytes from the origin, rewrites, failures),
  the access log's byte count (``server.observe`` wraps ``send``) and the edge identity's Set-Cookie
  (added to the head by the intake's ``send`` wrapper) look at what passes; none holds a byte back.
* **Every wait for the origin is bounded**: ``[timeouts] idle`` through the request's ``Deadline``, armed
  for each read and cleared while the client is written to (a slow client is backpressure, not silence).
* **After the commit, any failure aborts** (``ResponseAborted``): an idle origin, a broken body, a
  pipeline error, a work bound (``[limits] max_decoded_body_bytes``, ``max_decoded_bytes_without_output``).
  The client sees an incomplete response, never a clean-looking truncated one. One log line, one
  ``publisher_errors_total{stage="after_commit"}``.

Fairness (docs/fairness.md): a body transform works in decoded pieces of ``[event_loop] piece_bytes``
and, once it has used ``slice_ms`` of CPU, sends what it has and waits for its turn in the worker's
``slicing.WorkLane``: other requests, and the disconnect watcher, run between slices, so a client that
leaves stops the work within one slice.

Must not know: how the request was read or checked (``publisher.app``), how the gate decides
(``gate``), what a processor rewrites (``pipeline``), the wire to the origin (``upstream``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import NoReturn, Protocol

from sluicegate import gate
from sluicegate.config.model import Settings
from sluicegate.config.origin import Origin
from sluicegate.edge.asgi import ResponseAborted, Send, encode_headers
from sluicegate.edge.deadline import Deadline
from sluicegate.edge.headers import for_rewritten_body
from sluicegate.gate import Route
from sluicegate.observability import looplag, metrics
from sluicegate.pipeline import Identity, PipelineError, Transformer, WorkBoundExceeded
from sluicegate.pipeline.codecs import Decoder, Encoder, decoder_for, encoder_for
from sluicegate.pipeline.hosts import HostRewriter
from sluicegate.pipeline.html import HtmlRewriter
from sluicegate.publisher import coding, oneshot
from sluicegate.publisher import headers as hdr
from sluicegate.publisher.head_plan import HeadPlan, HeadPlans
from sluicegate.publisher.processors import build_processor
from sluicegate.publisher.response_headers import origin_names
from sluicegate.publisher.slicing import Slice, lane_for
from sluicegate.upstream.errors import OriginError

log = logging.getLogger("sluicegate.publisher")


class OriginBody(Protocol):
    """What the relay uses of an origin response (``upstream.http1.OriginResponse``): its head, and its body read
    as it arrives. A protocol, not the class: this module is compiled (mypyc checks a class-typed argument at
    every call), and in-process drivers (``bench stream-cost``) hand it a scripted response."""

    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> list[tuple[bytes, bytes]]: ...
    def read(self) -> Awaitable[bytes]: ...
    def at_eof(self) -> bool: ...
    def ready(self) -> bool: ...

# Mid-body output leaves at the end of each origin read, whenever _MAX_PENDING_PIECES encoded pieces are held
# (both as unsliced), at the first pause (bytes out early), and at a pause once this response has done
# _SEND_EVERY_WORK of its own work since its last send or _SEND_MAX_GAP of wall time has passed. Not at
# every pause: each send costs a sync flush (and compression), a chunk, a socket write and a wake-up of the
# client, which on a crowded machine pre-empts the worker and costs it its caches (~1 ms of its CPU per
# send measured at load 9-13). Sending at a wall-clock pace (it was every 8 ms) multiplied the sends per
# byte by the number of heavy responses sharing the loop: 4 x 5 MiB made 641 writes instead of 40, and
# cost 7-14 % of the CPU (docs/fairness.md).
_SEND_EVERY_WORK = 0.1  # s of this response's own work
_SEND_MAX_GAP = 1.0  # s of wall time (progress when many heavy responses share the loop)
_MAX_PENDING_PIECES = 64  # encoded pieces held before they are sent regardless (~1 MiB at 16 KiB pieces)


class BodyWork:
    """One response's transform state: the stages, its CPU slice, and the bound on work without output."""

    __slots__ = (
        "decoder", "encoder", "last_send", "pending", "processor", "quiet", "quiet_cap", "sent_work", "slice",
        "unflushed",
    )

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
        self.last_send = 0.0  # perf_counter of the last mid-body send (0: none yet)
        self.sent_work = 0.0  # the slice's work_s() at that send

    async def feed(self, chunk: bytes, send: Send) -> None:
        """Decode -> process -> encode one read, piece by piece; between slices send what is ready and wait
        for this response's next turn of the loop. Raises ``WorkBoundExceeded`` past the quiet cap."""
        processor = self.processor
        encoder = self.encoder
        pending = self.pending
        sl = self.slice
        for piece in self.decoder.feed_pieces(chunk):
            out = processor.feed(piece)
            if out:
                self.quiet = 0
                pending.append(encoder.compress(out))
                self.unflushed = True
            else:
                self.quiet += len(piece)
                if self.quiet > self.quiet_cap:
                    raise WorkBoundExceeded(
                        "max_decoded_bytes_without_output",
                        f"{self.quiet} decoded bytes consumed without output "
                        f"(max_decoded_bytes_without_output={self.quiet_cap})",
                    )
            if sl.spent():
                if self._send_due():
                    await self.send_ready(send)
                await sl.pause()
            elif len(pending) >= _MAX_PENDING_PIECES:
                # (unsliced, or a very fast transform): the output held is bounded all the same
                await self.send_ready(send)

    def _send_due(self) -> bool:
        if self.last_send == 0.0 or len(self.pending) >= _MAX_PENDING_PIECES:
            return True
        now = time.perf_counter()
        return self.slice.work_s(now) - self.sent_work >= _SEND_EVERY_WORK or now - self.last_send >= _SEND_MAX_GAP

    async def send_ready(self, send: Send) -> None:
        """Send what is encoded so far (flushed), if anything."""
        data = self.take()
        if data:
            now = time.perf_counter()
            self.last_send = now
            self.sent_work = self.slice.work_s(now)
            await send({"type": "http.response.body", "body": data, "more_body": True})

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


class PagePass(Protocol):
    """What the relay uses of ``[first_party] rewrite_domains`` (``firstparty.page.PageRewriting``). A protocol, not
    the class: that module (and the first-party machinery it brings) is imported only when the section is on
    (``publisher.app``), not by every worker that relays pages."""

    def one_pass(self, public_host: str) -> bool: ...
    def install(self, html: HtmlRewriter) -> None: ...
    def wrap(self, processor: Transformer, content_type: str = "") -> Transformer: ...
    def wrap_css(self, processor: Transformer, content_type: str = "") -> Transformer: ...


class Relay:
    """The relay of one publisher face: built once from the settings, one ``respond`` per response."""

    def __init__(self, settings: Settings, origin: Origin, fp_pages: PagePass | None) -> None:
        self.settings = settings
        self.origin = origin
        self.fp_pages = fp_pages  # [first_party] rewrite_domains (None = off)
        self.pub = settings.publisher
        self.id_header = settings.server.request_id_header
        self.idle = settings.timeouts.idle
        self.limits = settings.limits
        self.codec_levels = settings.compression.model_dump()
        self.slice_s = settings.event_loop.slice_ms / 1000.0
        self.piece_bytes = settings.event_loop.piece_bytes
        # the small-body fast path's bound (publisher.oneshot): never more than one piece of work
        self.one_pass = min(settings.limits.one_pass_body_bytes, self.piece_bytes)
        self.origin_names = origin_names(origin, self.pub.origin_host_header, self.pub.origin_aliases)
        self.plans = HeadPlans(self.id_header)
        self._id_header_b = self.id_header.lower().encode("latin-1")

    def classify(self, method: str, resp: OriginBody) -> tuple[gate.Decision, HeadPlan]:
        """The gate's decision on the origin's head, and the head's plan (``head_plan``), for ``respond``."""
        plan = self.plans.plan(resp.headers)
        return self.plans.decision(method, resp.status, resp.headers, plan), plan

    async def respond(
        self,
        resp: OriginBody,
        origin_headers: list[tuple[str, str]] | None,
        decision: gate.Decision,
        *,
        plan: HeadPlan | None = None,
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
        """Send the response head, then the body by the gate's route; raises ``ResponseAborted`` after the
        head on any failure. ``origin_headers`` (the origin's head as text) may be ``None`` when the head's
        ``plan`` (``classify``) is given: the common case, PassThrough of a body in no content coding, sends
        the planned head (``head_plan``: the same headers, no text round trip) and needs no more."""
        status = resp.status
        pub = self.pub
        if plan is not None:
            if decision.route is Route.PASS_THROUGH and not plan.encoding_at:
                planned = plan.apply(resp.headers, rewriter, self.origin_names, pub.public_hosts)
                planned.append((self._id_header_b, request_id.encode("latin-1")))
                await send({"type": "http.response.start", "status": status, "headers": planned})
                await self._pump(resp, send, request_id, deadline)
                return
            if origin_headers is None:
                origin_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers]
        assert origin_headers is not None, "respond needs the origin's headers or the head's plan"
        out_headers = hdr.downstream_response_headers(
            origin_headers, rewriter, self.origin, request_id, id_header=self.id_header,
            origin_host_header=pub.origin_host_header, public_hosts=pub.public_hosts, aliases=pub.origin_aliases,
            names=self.origin_names,
        )
        route = decision.route
        if route is Route.BODILESS:
            if method == "HEAD" and gate.classify("GET", status, origin_headers).route is Route.STREAM:
                # HEAD answers with the headers GET would send: GET rewrites this body, so the origin's
                # Content-Length and strong ETag describe bytes the client would never receive.
                out_headers = for_rewritten_body(out_headers)
            elif status == 304:
                out_headers = hdr.for_not_modified(out_headers, if_none_match)
            head = gate.bodiless_headers(status, out_headers)
            await send({"type": "http.response.start", "status": status, "headers": encode_headers(head)})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return

        in_coding = decision.encoding
        if route is Route.PASS_THROUGH:
            undo = coding.decodable(coding.content_codings(origin_headers))
            if undo is None or accepted.accepts(undo):
                if undo is not None:
                    out_headers = coding.ensure_vary(out_headers)
                await send({"type": "http.response.start", "status": status, "headers": encode_headers(out_headers)})
                await self._pump(resp, send, request_id, deadline)
                return
            # A coding the client refuses (an origin that ignored Accept-Encoding): decode, change nothing else.
            in_coding = undo
            processor: Transformer = Identity()
            out_coding = ""
            out_headers = coding.recoded_headers(out_headers, "")
        else:
            metrics.publisher_rewrite(decision.kind.value).inc()
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
                processor = fp.wrap(processor, ctype)
            elif fp is not None and gate.media_type(ctype) == "text/css":  # the publisher's stylesheets too
                processor = fp.wrap_css(processor, ctype)
            out_headers = for_rewritten_body(out_headers)
            out_coding = in_coding if accepted.accepts(in_coding) else accepted.best_encoding()
            if out_coding != in_coding:
                out_headers = coding.recoded_headers(out_headers, out_coding)
            elif in_coding:
                out_headers = coding.ensure_vary(out_headers)

        decoder: Decoder = decoder_for(in_coding, self.limits.max_decoded_body_bytes, self.piece_bytes)
        first = b""
        if self.one_pass and resp.ready():
            # the small-body fast path (publisher.oneshot): the whole body in hand -> one pass, Content-Length
            try:
                first = await resp.read()  # at once (ready); a failure is met again by the streaming path
            except OriginError:
                first = b""
            if first and len(first) <= self.one_pass and resp.at_eof():
                t0 = time.perf_counter()
                try:
                    done = oneshot.transform_whole(first, decoder, processor, None, limit=self.one_pass,
                                                   quiet_cap=self.limits.max_decoded_bytes_without_output,
                                                   reuse_wire=in_coding == out_coding == "gzip",
                                                   make_encoder=self._sized_encoder(out_coding))
                except PipelineError as exc:  # the streaming path meets it after the head, as it always did
                    done = oneshot.Resumed(decoder, oneshot.raising(exc))
                looplag.note_work(time.perf_counter() - t0, request_id, label)
                if isinstance(done, bytes):
                    metrics.inc_later(metrics.FROM_ORIGIN_BYTES, len(first))
                    out_headers.append(("content-length", str(len(done))))
                    await send({"type": "http.response.start", "status": status,
                                "headers": encode_headers(out_headers)})
                    await send({"type": "http.response.body", "body": done, "more_body": False})
                    return
                decoder = done
        work = BodyWork(
            decoder,
            processor,
            encoder_for(out_coding, **self.codec_levels),
            Slice(lane_for(asyncio.get_running_loop()), self.slice_s, request_id, label),
            self.limits.max_decoded_bytes_without_output,
        )
        await send({"type": "http.response.start", "status": status, "headers": encode_headers(out_headers)})
        await self._stream(resp, send, request_id, deadline, work, first)

    def _sized_encoder(self, coding: str) -> Callable[[int], Encoder]:
        """The one-pass path's encoder, made for the size of what it encodes (``codecs.encoder_for``'s size hint)."""
        levels = self.codec_levels

        def make(size: int) -> Encoder:
            return encoder_for(coding, size_hint=size, **levels)

        return make

    async def _stream(
        self, resp: OriginBody, send: Send, request_id: str, deadline: Deadline, work: BodyWork,
        first: bytes = b"",
    ) -> None:
        """The Stream route: the body is transformed as it arrives, in slices; abort the client on failure.
        ``first``: the body's first read, when the caller has already made it."""
        idle = self.idle
        relayed_in = 0
        readany = resp.read
        final = b""
        sl = work.slice
        chunk = first
        try:
            with deadline:
                while True:
                    if not chunk:  # (else: the first read, made by the caller)
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
                    await work.feed(chunk, send)
                    chunk = b""
                    if resp.at_eof():
                        continue  # what is pending leaves with the end of the response (one write)
                    await work.send_ready(send)
            final = work.tail()
        except TimeoutError:
            self._abort(request_id, "idle_timeout", f"origin sent nothing for {idle:g}s mid-body")
        except WorkBoundExceeded as exc:
            metrics.publisher_error("after_commit", exc.kind).inc()
            metrics.work_bound(exc.bound).inc()
            log.warning(
                "request %s: work bound %s hit (origin %s): %s; aborting the client connection",
                request_id, exc.bound, self.origin.authority, exc,
            )
            raise ResponseAborted(str(exc)) from None
        except PipelineError as exc:
            self._abort(request_id, exc.kind, str(exc))
        except OriginError as exc:
            self._abort(request_id, exc.kind, f"origin body failed: {exc}")
        finally:
            sl.done()
            metrics.inc_later(metrics.FROM_ORIGIN_BYTES, relayed_in)
            if sl.pauses:
                metrics.SLICE_PAUSES_LANE.inc(sl.pauses - sl.light_pauses)
                if sl.light_pauses:
                    metrics.SLICE_PAUSES_LIGHT.inc(sl.light_pauses)
        await send({"type": "http.response.body", "body": final, "more_body": False})

    async def _pump(self, resp: OriginBody, send: Send, request_id: str, deadline: Deadline) -> None:
        await pass_through(resp, send, deadline, self.idle, lambda kind, msg: self._abort(request_id, kind, msg))

    def _abort(self, request_id: str, kind: str, message: str) -> NoReturn:
        metrics.publisher_error("after_commit", kind).inc()
        log.warning("request %s: aborting client connection after commit: %s (%s)", request_id, message, kind)
        aborted = ResponseAborted(message)
        aborted.kind = kind
        raise aborted


async def pass_through(
    resp: OriginBody,
    send: Send,
    deadline: Deadline,
    idle: float,
    abort: Callable[[str, str], NoReturn],
    who: str = "origin",
) -> None:
    """PassThrough: relay body chunks untouched until ``resp`` ends; on any failure ``abort(kind, message)``
    (which raises ``ResponseAborted``). Shared by the page relay and the asset routes (``publisher.assets``).

    ``idle`` bounds each wait for the upstream and nothing else: time spent in ``send`` is the client's
    backpressure, not upstream silence. The last chunk leaves with the end of the response (one write
    instead of two for a small body).
    """
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
                    last = chunk  # the next read returns b"" and ends the loop
                    continue
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except TimeoutError:
        abort("idle_timeout", f"{who} sent nothing for {idle:g}s mid-body")
    except OriginError as exc:
        abort(exc.kind, f"{who} body failed: {exc}")
    finally:
        metrics.inc_later(metrics.FROM_ORIGIN_BYTES, relayed_in)
    await send({"type": "http.response.body", "body": last, "more_body": False})
