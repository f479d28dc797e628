"""The image optimizer's I/O shell: one asset request in, one image (or a clear error) out.

Owns the request lifecycle of an optimized image: admission to the pool before anything is fetched (full:
503 + Retry-After), the origin request's conditional headers (the client's ``If-None-Match`` turned back
into the source's ETags, so a revalidation is answered 304 by the origin without a body being fetched or
anything decoded; nothing else conditional, no ``Range``, ``Accept-Encoding: identity``), the bounded
source read (``max_source_bytes`` -> 413, ``source_timeout`` -> 504, a body cut short -> 502), the pool run,
and the response head (type, length, derived ETag, ``Vary: Accept`` when negotiated, the origin's caching
headers). Responses that are not images to make (a non-200 status, a body that is not a raster image by its
Content-Type, an SVG) are handed back to the caller, who relays them as its asset path always does.

The seam for asset routes is ``ImageOptimizer.handle``; the caller supplies ``fetch`` (the origin request
with the caller's own outbound headers, minus ``REPLACED_HEADERS``, plus the ones given) and may supply
``finish_headers`` (its own response-header policy, e.g. a route's ``cache_control``), applied last.
Must not know about route tables, the origin connection pool's internals, or pyvips.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from sluicegate.config.images import ImageOptimizerSettings
from sluicegate.images.engine import ImageError, Job
from sluicegate.images.pool import ImagePool, Ticket
from sluicegate.images.profiles import CONTENT_TYPES, Passthrough, Plan, Reject, Selector, origin_query
from sluicegate.server.asgi import Scope, Send, encode_headers, send_simple

log = logging.getLogger("sluicegate.images")

# Outbound request headers the optimizer decides itself for an image it makes (the caller drops the client's).
REPLACED_HEADERS = frozenset(
    {"if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "range", "if-range", "accept-encoding"}
)
# Source Content-Types that are decoded (the body's magic bytes must then agree with a format the engine
# takes). A missing type or application/octet-stream is decided by the magic bytes alone.
RASTER_TYPES = frozenset({"image/jpeg", "image/pjpeg", "image/png", "image/gif", "image/webp", "image/avif",
                          "image/heic", "image/heif"})
_SNIFFED_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
# Origin response headers an optimized image keeps (everything about the body itself is ours).
_KEPT = frozenset({"cache-control", "expires", "last-modified", "date", "age", "access-control-allow-origin",
                   "timing-allow-origin", "cross-origin-resource-policy", "x-request-id"})


class SourceResponse(Protocol):
    """What ``fetch`` returns: ``upstream.http1.OriginResponse`` fits."""

    status: int
    headers: list[tuple[bytes, bytes]]

    def read(self) -> Awaitable[bytes]: ...  # body bytes; b"" at the end

    def release(self) -> None: ...


Fetch = Callable[[list[tuple[str, str]]], Awaitable[SourceResponse]]
FinishHeaders = Callable[[int, list[tuple[str, str]]], list[tuple[str, str]]]


class SourceError(Exception):
    """Raised by ``fetch`` implementations for an origin that cannot be reached (-> 502)."""


_pools: dict[tuple[int, int], ImagePool] = {}


def pool_for(settings: ImageOptimizerSettings) -> ImagePool:
    """The worker process's one image pool (created on first use; one per ``[image_optimizer]`` sizing)."""
    key = (settings.workers, settings.queue)
    pool = _pools.get(key)
    if pool is None:
        import pyvips  # type: ignore[import-untyped]  # the engine module set the cache bounds at import

        pyvips.concurrency_set(settings.vips_concurrency)
        pool = _pools[key] = ImagePool(settings.workers, settings.queue)
    return pool


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str:
    for k, v in headers:
        if k.lower() == name:
            return v.decode("latin-1")
    return ""


def _scope_header(scope: Scope, name: bytes) -> str:
    return ", ".join(v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == name)


class ImageOptimizer:
    """One asset route's optimizer: its profile set, the shared pool, the bounds."""

    def __init__(self, settings: ImageOptimizerSettings, profile_set: str, pool: ImagePool | None = None) -> None:
        self.settings = settings
        self.selector = Selector(settings, profile_set)
        self.pool = pool or pool_for(settings)

    def decide(self, scope: Scope) -> Plan | Passthrough | Reject:
        return self.selector.decide(
            scope.get("method", "GET"), scope.get("path", "/"), scope.get("query_string", b""),
            _scope_header(scope, b"accept"),
        )

    def origin_query(self, query: bytes) -> bytes:
        """The query the origin gets: the profile parameter (and the operator switch) removed."""
        return origin_query(query, self.selector.param_names)

    async def handle(
        self, scope: Scope, send: Send, fetch: Fetch, finish_headers: FinishHeaders | None = None
    ) -> SourceResponse | None:
        """Answer an image request. Returns None when answered, or the origin's response for the caller to
        relay unchanged (not an image to make: a non-200, a non-raster type, an SVG, or the plan said so —
        then it is the unmodified request's response)."""
        plan = self.decide(scope)
        if isinstance(plan, Reject):
            await send_simple(send, plan.status, plan.message.encode())
            return None
        if isinstance(plan, Passthrough):
            return await fetch([])
        ticket = self.pool.admit()
        if ticket is None:
            retry = str(self.settings.retry_after)
            await send_simple(send, 503, b"image optimizer busy: every worker and queue slot is taken; retry later\n",
                              [("retry-after", retry)])
            return None
        try:
            return await self._make(plan, scope, send, fetch, finish_headers or _same, ticket)
        finally:
            ticket.abandon()  # no-op once the pool runs it (released there when the thread is done)

    async def _make(
        self, plan: Plan, scope: Scope, send: Send, fetch: Fetch, finish: FinishHeaders, ticket: Ticket
    ) -> SourceResponse | None:
        outbound = [("accept-encoding", "identity")]
        inm = _scope_header(scope, b"if-none-match")
        tags = plan.source_etags(inm) if inm else []
        if tags:
            outbound.append(("if-none-match", ", ".join(tags)))
        head_only = scope.get("method") == "HEAD"
        s = self.settings
        started = time.monotonic()
        try:
            async with asyncio.timeout(s.source_timeout):
                resp = await fetch(outbound)
        except TimeoutError:
            await _error(send, 504, f"the origin did not answer within {s.source_timeout:g} s "
                               "(image_optimizer.source_timeout)")
            return None
        except SourceError as exc:
            await _error(send, 502, f"the image's origin cannot be reached: {exc}")
            return None
        status = resp.status
        if status == 304 and tags:
            resp.release()
            source_etag = _header(resp.headers, b"etag") or tags[0]
            head = self._head(plan, resp.headers, source_etag, None)
            await _start(send, 304, finish(304, head))
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return None
        ctype = _header(resp.headers, b"content-type").split(";", 1)[0].strip().lower()
        if status != 200 or not (ctype in RASTER_TYPES or ctype in _SNIFFED_TYPES):
            return resp  # an error page, an SVG, a CSS file under the same route: relayed as the origin sent it
        try:
            length = _header(resp.headers, b"content-length")
            if length.isdigit() and int(length) > s.max_source_bytes:
                await _error(send, 413, f"the origin's image is {length} bytes, over the limit of "
                                   f"{s.max_source_bytes} (image_optimizer.max_source_bytes)")
                return None
            remaining = s.source_timeout - (time.monotonic() - started)
            body = await self._read(resp, remaining)
        except ImageError as exc:
            await _error(send, exc.status, exc.message)
            return None
        finally:
            resp.release()
        p = plan.profile
        job = Job(body, p.width, p.height, p.fit, p.crop, p.quality, plan.format, plan.negotiated,
                  s.max_source_pixels, s.max_source_aspect_ratio, s.timeout)
        del body
        try:
            result = await self.pool.run(ticket, job)
        except ImageError as exc:
            if exc.status >= 500 and exc.kind != "timeout":
                log.info("image not made: %s", exc.message)
            extra = [("retry-after", str(s.retry_after))] if exc.status == 503 else []
            await _error(send, exc.status, exc.message, extra)
            return None
        source_etag = _header(resp.headers, b"etag")
        head = self._head(plan, resp.headers, source_etag, result.format)
        head.append(("content-length", str(len(result.body))))
        await _start(send, 200, finish(200, head))
        await send({"type": "http.response.body", "body": b"" if head_only else result.body, "more_body": False})
        return None

    async def _read(self, resp: SourceResponse, remaining: float) -> bytes:
        s = self.settings
        parts: list[bytes] = []
        got = 0
        try:
            async with asyncio.timeout(max(remaining, 0.001)):
                while True:
                    chunk = await resp.read()
                    if not chunk:
                        break
                    got += len(chunk)
                    if got > s.max_source_bytes:
                        raise ImageError(413, "too_large", f"the origin's image is over {s.max_source_bytes} "
                                                           "bytes (image_optimizer.max_source_bytes)")
                    parts.append(chunk)
        except TimeoutError:
            raise ImageError(504, "source_timeout", f"the origin stalled: {got} bytes of the image in "
                             f"{s.source_timeout:g} s (image_optimizer.source_timeout)") from None
        except ImageError:
            raise
        except Exception as exc:  # the origin client's own errors: a connection cut mid-body
            raise ImageError(502, "source_cut", f"the origin's image ended early after {got} bytes: "
                                                f"{type(exc).__name__}") from None
        return b"".join(parts)

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


def _same(_status: int, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return headers


async def _start(send: Send, status: int, headers: list[tuple[str, str]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": encode_headers(headers)})


async def _error(send: Send, status: int, message: str, extra: list[tuple[str, str]] | None = None) -> None:
    await send_simple(send, status, (message + "\n").encode(), extra)
