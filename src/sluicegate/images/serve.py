"""The image optimizer's I/O shell: one asset request in, one image (or a clear error) out.

Owns the request lifecycle of an optimized image: admission to the pool before anything is fetched (full:
503 + Retry-After), the origin request's conditional headers (the client's ``If-None-Match`` turned back
into the source's ETags, so a revalidation is answered 304 by the origin without a body being fetched or
anything decoded; nothing else conditional, no ``Range``, ``Accept-Encoding: identity``), the bounded
source read (``max_source_bytes`` -> 413, ``source_timeout`` -> 504, a body cut short -> 502), the pool run,
and the response head (type, length, derived ETag, ``Vary: Accept`` when negotiated, the origin's caching
headers). Responses that are not images to make (a non-200 status, a body that is not a raster image by its
Content-Type) are relayed as the origin sent them; requests that are not for the optimizer at all (an SVG or a
non-raster extension, the operator's switch) are left to the route before anything is fetched.

The seam for asset routes is ``ImageOptimizer.maybe_optimize(exchange, send)`` (``publisher.optimizer_seam``):
the exchange's ``fetch`` is the route's own backend request (its header allowlist minus ``REPLACED_HEADERS``,
plus ours; the target without the profile parameter; S3 signing) and its ``response_headers`` the route's
response policy, applied last to everything sent here, errors included.
Must not know about route tables, the origin connection pool's internals, or pyvips.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from prometheus_client import Counter, Histogram

from sluicegate.config.images import ImageOptimizerSettings
from sluicegate.edge.asgi import ResponseAborted, Send, encode_headers
from sluicegate.images.job import ImageError, Job, sniff
from sluicegate.images.pool import ImagePool, Ticket
from sluicegate.images.profiles import CONTENT_TYPES, Passthrough, Plan, Reject, Selector, origin_query
from sluicegate.images.source import SourceReader
from sluicegate.images.stream import open_pipe, pump
from sluicegate.observability import looplag
from sluicegate.observability.metrics import REGISTRY
from sluicegate.upstream.errors import OriginError
from sluicegate.upstream.handover import DetachedBody, detach_body
from sluicegate.upstream.http1 import OriginResponse

log = logging.getLogger("sluicegate.images")

IMAGES = Counter(
    "sluicegate_images_total",
    "Image optimizer answers, by result: made, not_modified, relayed (not an image to make), busy (503 at "
    "admission), bad_profile (400), or the failure kind (too_large, too_many_pixels, aspect_ratio, "
    "not_an_image, corrupt_source, source_cut, source_timeout, origin_timeout, origin_error, timeout, cancelled)",
    ["result"],
    registry=REGISTRY,
)
IMAGE_SECONDS = Histogram(
    "sluicegate_image_seconds",
    "An image made: source fetched and read, queued, decoded, resized, encoded (seconds)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)

SPLICED_SOURCES = Counter(
    "sluicegate_image_sources_spliced",
    "Streamed image sources moved from the origin's socket into the decoder's pipe by splice(2), in the kernel",
    registry=REGISTRY,
)
STREAMED_SOURCES = Counter(
    "sluicegate_image_sources_streamed",
    "Image sources streamed into the decoder as they arrived (longer than stream_source_above)",
    registry=REGISTRY,
)


@functools.cache
def _count(result: str) -> Counter:
    return IMAGES.labels(result)

# Outbound request headers the optimizer decides itself for an image it makes (the caller drops the client's).
REPLACED_HEADERS = frozenset(
    {"if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "range", "if-range", "accept-encoding"}
)
# Source Content-Types that are decoded (the body's magic bytes must then agree with a format the engine
# takes). A missing type or application/octet-stream is decided by the magic bytes alone.
RASTER_TYPES = frozenset({"image/jpeg", "image/pjpeg", "image/png", "image/gif", "image/webp", "image/avif",
                          "image/heic", "image/heif"})
# Sources streamed into the decoder when long (``stream_source_above``): their loaders read sequentially.
STREAMED = frozenset({"jpeg", "png"})
_SNIFFED_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
# Origin response headers an optimized image keeps (everything about the body itself is ours).
_KEPT = frozenset({"cache-control", "expires", "last-modified", "date", "age", "access-control-allow-origin",
                   "timing-allow-origin", "cross-origin-resource-policy", "x-request-id"})


class SourceResponse(Protocol):
    """What ``Exchange.fetch`` returns: ``upstream.http1.OriginResponse`` fits."""

    status: int
    headers: list[tuple[bytes, bytes]]

    def read(self) -> Awaitable[bytes]: ...  # body bytes; b"" at the end

    def release(self) -> None: ...


class Exchange(Protocol):
    """One asset request as the route hands it over (``publisher.optimizer_seam.AssetExchange`` fits)."""

    method: str
    path: str
    client_query: bytes
    headers: list[tuple[str, str]]

    def fetch(self, method: str = "GET", extra: Sequence[tuple[str, str]] = (), *,
              drop: frozenset[str] = frozenset(), target: str | None = None) -> Awaitable[SourceResponse]: ...

    def response_headers(self, status: int, headers: list[tuple[str, str]]) -> list[tuple[str, str]]: ...

    @property
    def target(self) -> str: ...


_pools: dict[tuple[int, int, int], ImagePool] = {}


def pool_for(settings: ImageOptimizerSettings) -> ImagePool:
    """The worker process's one image pool (created on first use; one per ``[image_optimizer]`` sizing)."""
    key = (settings.workers, settings.queue, settings.vips_concurrency)
    pool = _pools.get(key)
    if pool is None:
        pool = _pools[key] = ImagePool(settings.workers, settings.queue, settings.vips_concurrency,
                                       settings.release_memory, settings.malloc_mmap_threshold)
    return pool


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str:
    for k, v in headers:
        if k.lower() == name:
            return v.decode("latin-1")
    return ""


def _client_header(headers: list[tuple[str, str]], name: str) -> str:
    return ", ".join(v for k, v in headers if k.lower() == name)


class ImageOptimizer:
    """One asset route's optimizer: its profile set, the shared pool, the bounds (``AssetOptimizer``)."""

    def __init__(self, settings: ImageOptimizerSettings, profile_set: str, pool: ImagePool | None = None) -> None:
        self.settings = settings
        self.selector = Selector(settings, profile_set)
        self.pool = pool or pool_for(settings)

    def decide(self, ex: Exchange) -> Plan | Passthrough | Reject:
        return self.selector.decide(ex.method, ex.path, ex.client_query, _client_header(ex.headers, "accept"))

    def origin_target(self, target: str) -> str:
        """The backend target without the profile parameter (and the operator switch): the origin serves the
        source under the URL it always has, so its caches are shared with plain requests."""
        path, sep, query = target.partition("?")
        if not sep:
            return target
        kept = origin_query(query.encode("latin-1"), self.selector.param_names)
        return path + ("?" + kept.decode("latin-1") if kept else "")

    async def maybe_optimize(self, ex: Exchange, send: Send) -> bool:
        """Answer the request (True), or leave it to the route's plain streamed relay (False: an SVG, a
        file that is not a raster image by its extension, the operator's switch, a method other than GET/HEAD)."""
        plan = self.decide(ex)
        if isinstance(plan, Reject):
            _count("bad_profile").inc()
            await _error(ex, send, plan.status, plan.message)
            return True
        if isinstance(plan, Passthrough):
            return False
        ticket = self.pool.admit()
        if ticket is None:
            _count("busy").inc()
            await _error(ex, send, 503, "image optimizer busy: every worker and queue slot is taken; retry later",
                         [("retry-after", str(self.settings.retry_after))])
            return True
        try:
            await self._make(plan, ex, send, ticket)
        finally:
            ticket.abandon()  # no-op once the pool runs it (released there when the thread is done)
        return True

    async def _make(self, plan: Plan, ex: Exchange, send: Send, ticket: Ticket) -> None:
        outbound = [("accept-encoding", "identity")]
        inm = _client_header(ex.headers, "if-none-match")
        tags = plan.source_etags(inm) if inm else []
        if tags:
            outbound.append(("if-none-match", ", ".join(tags)))
        s = self.settings
        started = time.monotonic()
        streamed = False
        try:
            async with asyncio.timeout(s.source_timeout):
                resp = await ex.fetch("GET", outbound, drop=REPLACED_HEADERS, target=self.origin_target(ex.target))
        except TimeoutError:
            _count("origin_timeout").inc()
            await _error(ex, send, 504, f"the image's origin did not answer within {s.source_timeout:g} s")
            return
        except OriginError as exc:
            _count("origin_error").inc()
            await _error(ex, send, 502, f"the image's origin cannot be reached ({exc.kind})")
            return
        try:
            status = resp.status
            if status == 304 and tags:
                source_etag = _header(resp.headers, b"etag") or tags[0]
                head = self._head(plan, resp.headers, source_etag, None)
                _count("not_modified").inc()
                await _start(send, 304, ex.response_headers(304, head))
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            ctype = _header(resp.headers, b"content-type").split(";", 1)[0].strip().lower()
            if status != 200 or not (ctype in RASTER_TYPES or ctype in _SNIFFED_TYPES):
                # an error page, or a body that says it is no raster image: relayed as the origin sent it
                _count("relayed").inc()
                await self._relay(resp, ex, send, started)
                return
            length = _header(resp.headers, b"content-length")
            if length.isdigit() and int(length) > s.max_source_bytes:
                _count("too_large").inc()
                await _error(ex, send, 413, f"the origin's image is {length} bytes, over the limit of "
                                        f"{s.max_source_bytes} (image_optimizer.max_source_bytes)")
                return
            deadline = started + s.source_timeout
            detached = detach_body(resp) if isinstance(resp, OriginResponse) else None
            first_len = len(detached.first) if detached is not None else 0
            if detached is not None:
                # read by our own protocol into buffers sized once (images.source): no per-read objects
                body, ended, read_more, splicer = await self._read_detached(detached, deadline)
            else:
                read_more, splicer = resp.read, None
                body, ended = await self._read(resp, deadline, s.stream_source_above or None)
                if not ended and sniff(body) not in STREAMED:
                    # a format whose decoder needs the whole file (GIF, WebP, AVIF) or no image at all
                    body, ended = await self._read(resp, deadline, None, body)
            streamed = not ended  # the response is then released once the pump is done with it
        except ImageError as exc:
            _count(exc.kind).inc()
            await _error(ex, send, exc.status, exc.message)
            return
        finally:
            if not streamed:
                resp.release()
        p = plan.profile
        job = Job(body, p.width, p.height, p.fit, p.crop, p.quality, plan.format, plan.negotiated,
                  s.max_source_pixels, s.max_source_aspect_ratio, s.timeout, p.effort)
        feeder: asyncio.Task[None] | None = None
        if streamed:
            # the rest arrives through a pipe while libvips decodes: held here, only what is already read
            job.source = bytes(body[:64])
            try:
                job.stream_fd, write_fd = open_pipe()
            except OSError as exc:  # out of descriptors: refused like a full pool, never left hanging
                resp.release()
                _count("busy").inc()
                await _error(ex, send, 503, f"image optimizer busy: no pipe for the source ({exc.strerror})",
                             [("retry-after", str(s.retry_after))])
                return
            STREAMED_SOURCES.inc()
            remaining = deadline - time.monotonic()
            feeder = asyncio.create_task(pump(job, write_fd, body, read_more, s.max_source_bytes,
                                              s.source_timeout, remaining,
                                              splicer.splice_into if splicer is not None else None,
                                              _arrived(first_len, splicer) if splicer is not None else None))
            if splicer is not None:
                SPLICED_SOURCES.inc()
        del body
        try:
            # Waiting for an image thread is no work of the loop's: the request is not counted in flight
            # meanwhile, so a loop with nothing else to do parks its lag timer (it woke 100 times a second
            # through every image: ~7 of the loop's ~17 wake-ups per image, docs/images.md); the pump's rounds
            # go on, and any other request's enter() re-arms the timer.
            looplag.leave()
            try:
                result = await self.pool.run(ticket, job)
            finally:
                looplag.enter()
        except ImageError as exc:
            job.source = b""
            _count(exc.kind).inc()
            if exc.status >= 500 and exc.kind not in ("timeout", "source_timeout", "source_cut"):
                log.info("image not made: %s", exc.message)
            extra = [("retry-after", str(s.retry_after))] if exc.status == 503 else []
            await _error(ex, send, exc.status, exc.message, extra)
            return
        finally:
            if feeder is not None:
                feeder.cancel()  # done already, or its pipe closed: the decoder has what it needed
                await asyncio.wait([feeder])
                if not feeder.cancelled() and feeder.exception() is not None:
                    log.warning("image source pump failed: %r", feeder.exception())
                if splicer is not None:
                    splicer.close()  # its duplicate of the socket's descriptor, if the body did not end
                resp.release()
                job.close_stream()  # never taken by a thread (a job dropped from the queue)
        job.source = b""  # the source is not held while the answer is sent
        _count("made").inc()
        IMAGE_SECONDS.observe(time.monotonic() - started)
        head = self._head(plan, resp.headers, _header(resp.headers, b"etag"), result.format)
        head.append(("content-length", str(len(result.body))))
        await _start(send, 200, ex.response_headers(200, head))
        body_out = b"" if ex.method == "HEAD" else result.body
        await send({"type": "http.response.body", "body": body_out, "more_body": False})

    async def _read(self, resp: SourceResponse, deadline: float, stop_after: int | None,
                    buf: bytearray | None = None) -> tuple[bytearray, bool]:
        """The source, in ONE growing buffer (``+=`` on a bytearray grows in place, by mremap for large
        ones): never a list of chunks plus their joined copy, which would hold each source twice.

        Reads to the end (True), or stops once more than ``stop_after`` bytes are in (False: to be
        streamed into the decoder, ``images.stream``)."""
        s = self.settings
        buf = bytearray() if buf is None else buf
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.001)):
                while chunk := await resp.read():
                    if len(buf) + len(chunk) > s.max_source_bytes:
                        raise ImageError(413, "too_large", f"the origin's image is over {s.max_source_bytes} "
                                                           "bytes (image_optimizer.max_source_bytes)")
                    buf += chunk
                    if stop_after is not None and len(buf) > stop_after:
                        return buf, False
        except TimeoutError:
            raise ImageError(504, "source_timeout", f"the origin stalled: {len(buf)} bytes of the image in "
                             f"{s.source_timeout:g} s (image_optimizer.source_timeout)") from None
        except OriginError as exc:
            raise ImageError(502, "source_cut", f"the origin's image ended early after {len(buf)} bytes "
                                                f"({exc.kind})") from None
        return buf, True

    async def _read_detached(self, detached: DetachedBody, deadline: float
                             ) -> tuple[bytearray, bool, Callable[[], Awaitable[bytes | memoryview]],
                                        SourceReader | None]:
        """A source whose length is known (and within ``max_source_bytes``), read by ``SourceReader``: into
        one buffer of exactly its length (True), or, for a JPEG/PNG longer than ``stream_source_above``, its
        first bytes only (False) and a ``read`` for the pump that refills one reused buffer, or (a plain TCP
        origin, ``splice_sources``) the reader whose ``splice_into`` moves the rest from the socket into the pipe."""
        total = len(detached.first) + detached.remaining
        reader = SourceReader(detached) if detached.remaining else None
        stream_above = self.settings.stream_source_above
        first = detached.first
        got = len(first)
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.001)):
                if reader is not None and stream_above and total > stream_above:
                    if got < _SNIFF_BYTES:  # too few bytes yet to recognise the format
                        more = bytearray(_SNIFF_BYTES - got)
                        n = await reader.readinto(memoryview(more), whole=True)
                        first += bytes(more[:n])
                        got = len(first)
                    if sniff(first) in STREAMED:
                        if self.settings.splice_sources and reader.can_splice():
                            return bytearray(first), False, _no_more, reader
                        return bytearray(first), False, _refill(reader, min(total, _STREAM_READ_BYTES)), None
                buf = bytearray(total)
                buf[:got] = first
                view = memoryview(buf)
                while reader is not None and got < total:
                    got += await reader.readinto(view[got:], whole=True)
                del view
        except TimeoutError:
            got = len(detached.first) + (reader.received if reader else 0)
            raise ImageError(504, "source_timeout", f"the origin stalled: {got} bytes of the image in "
                             f"{self.settings.source_timeout:g} s (image_optimizer.source_timeout)") from None
        except OriginError as exc:
            got = len(detached.first) + (reader.received if reader else 0)
            raise ImageError(502, "source_cut", f"the origin's image ended early after {got} bytes "
                                                f"({exc.kind})") from None
        return buf, True, _no_more, None

    async def _relay(self, resp: SourceResponse, ex: Exchange, send: Send, started: float) -> None:
        """A response that is not an image to make, streamed as the origin sent it (route header policy)."""
        origin = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers]
        head = ex.response_headers(resp.status, origin)
        bodiless = ex.method == "HEAD" or resp.status in (204, 304)
        await _start(send, resp.status, head)
        if bodiless:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        try:
            async with asyncio.timeout(max(self.settings.source_timeout - (time.monotonic() - started), 0.001)):
                while chunk := await resp.read():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (TimeoutError, OriginError) as exc:
            aborted = ResponseAborted(f"origin body failed mid-relay: {type(exc).__name__}")
            raise aborted from None
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _head(self, plan: Plan, origin: list[tuple[bytes, bytes]], source_etag: str,
              fmt: str | None) -> list[tuple[str, str]]:
        head: list[tuple[str, str]] = []
        vary: list[str] = []
        for k, v in origin:
            name = k.decode("latin-1").lower()
            if name in _KEPT:
                head.append((name, v.decode("latin-1")))
            elif name == "vary":
                vary += [x.strip() for x in v.decode("latin-1").split(",") if x.strip()]
        if plan.negotiated and not any(x.lower() == "accept" for x in vary):
            vary.append("Accept")
        if vary:
            head.append(("vary", ", ".join(vary)))
        etag = plan.etag_for(source_etag)
        if etag:
            head.append(("etag", etag))
        if fmt is not None:
            head.append(("content-type", CONTENT_TYPES[fmt]))
            head.append(("x-content-type-options", "nosniff"))
        return head


async def _start(send: Send, status: int, headers: list[tuple[str, str]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": encode_headers(headers)})


async def _error(
    ex: Exchange, send: Send, status: int, message: str, extra: list[tuple[str, str]] | None = None
) -> None:
    """A short plain-text answer (never cached) under the route's header policy (request id)."""
    body = (message.rstrip("\n") + "\n").encode()
    head = [("content-type", "text/plain; charset=utf-8"), ("content-length", str(len(body))),
            ("cache-control", "no-store"), *(extra or [])]
    await _start(send, status, ex.response_headers(status, head))
    await send({"type": "http.response.body", "body": b"" if ex.method == "HEAD" else body, "more_body": False})


_SNIFF_BYTES = 64  # the first bytes a streamed job keeps (format recognition)
_STREAM_READ_BYTES = 512 * 1024  # the reused buffer a streamed source is read into, then written to the pipe


def _refill(reader: SourceReader, size: int) -> Callable[[], Awaitable[memoryview]]:
    """The pump's ``read``: the next bytes of the body in one reused buffer (the pump writes them all into
    the pipe before it reads again); empty at the end."""
    view = memoryview(bytearray(size))

    async def read() -> memoryview:
        return view[:await reader.readinto(view)]

    return read


def _arrived(first: int, reader: SourceReader) -> Callable[[], int]:
    """The body's bytes the origin has sent so far: those the client had parsed, then the reader's (the
    format-sniffing read included), and any still waiting in the socket."""
    return lambda: first + reader.arrived()


async def _no_more() -> bytes:
    return b""
