"""Inbound mapping: the request the origin receives, public -> origin (docs/round-trip.md).

The outbound mapping writes the public host into what the browser gets; what the browser sends back
(a followed link's query, a submitted form, the page's address as ``Referer``/``Origin``, a cookie
whose value the outbound mapping changed) carries the public host where the origin wrote its own. This
module runs the one mapping (``pipeline.hosts``) backwards, with the public host of this request as
the "origin" and the origin's own authority (``origin_host_header`` when set, else ``origin_url``'s)
as the replacement, so the origin sees what it would see without the proxy:

* the query: each value (the percent-decoded view, re-encoded as sent: ``inbound_values``);
* ``Referer`` and ``Origin``: the URL's authority, and the values of a ``Referer``'s query;
* ``Cookie``: each cookie value;
* ``application/x-www-form-urlencoded`` bodies: ``inbound_form.FormBodyMapper``, streamed.

The path, other headers, ``multipart/form-data`` and JSON bodies pass unchanged. Only the host the
request came in on is mapped: a URL naming any other authority is left exactly as it was.
``[publisher] map_requests = false`` turns all of this off.

Must not know about sockets beyond the two async helpers ``client_body`` and ``prepare_body`` (reading the client body).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from sluicegate.config.origin import Origin
from sluicegate.edge.asgi import ClientGone
from sluicegate.edge.client import ClientWatch
from sluicegate.pipeline.hosts import HostRewriter, OriginMatcher
from sluicegate.pipeline.hosts_url import browser_url_start
from sluicegate.publisher.inbound_form import FormBodyMapper
from sluicegate.publisher.inbound_values import ValueMapper
from sluicegate.upstream.errors import BodySourceStopped

FORM_TYPE = "application/x-www-form-urlencoded"
log = logging.getLogger("sluicegate.publisher")


class InboundMapper:
    """Public -> origin for the requests arriving on one public (scheme, authority)."""

    def __init__(self, rewriter: HostRewriter, public_host: str) -> None:
        self.rw = rewriter
        self.values = ValueMapper(rewriter, public_host)
        self.form_values = ValueMapper(rewriter, public_host, serialized_by_browser=True)

    @classmethod
    def build(
        cls, public_scheme: str, public_authority: str, origin: Origin, origin_host_header: str = ""
    ) -> InboundMapper | None:
        """``None`` when the public authority is not something the mapping can name (nothing mapped)."""
        try:
            public = Origin.parse(f"{public_scheme}://{public_authority}")
        except ValueError:
            return None
        target = origin_host_header.strip().lower() or origin.authority
        return cls(OriginMatcher(public).for_request(origin.scheme, target), public.host)

    def map_query(self, query: bytes) -> bytes:
        """A raw query string (no ``?``): each ``name=value`` field's value mapped; names, separators
        and fields without ``=`` stay as they are."""
        if not query or not self.values.might_contain(query):
            return query
        return self._map_fields(query, b"&")

    def map_url(self, url: str) -> str:
        """A whole URL (``Referer``, ``Origin``) on the public host: its authority, then its query values.
        A URL on any other host is left exactly as it is, query included."""
        # Decided by the URL's start alone (as the browser's parser reads it): ``rewrite_url`` would also
        # map a bare public host anywhere in the rest, i.e. in another site's query or path.
        head = browser_url_start(self.rw, url)
        if head is None:
            return url
        new_head, k = head
        path, q, rest = url[k:].partition("?")
        if not q:
            return new_head + path
        query, hash_, frag = rest.partition("#")
        raw = query.encode("latin-1", "surrogateescape")
        mapped = self.map_query(raw)
        return new_head + path + q + mapped.decode("latin-1", "surrogateescape") + hash_ + frag

    def map_cookie(self, header: str) -> str:
        """``Cookie: a=1; b=2``: each value mapped, names and separators kept byte for byte."""
        raw = header.encode("latin-1", "surrogateescape")
        if not self.values.might_contain(raw):
            return header
        return self._map_fields(raw, b";").decode("latin-1", "surrogateescape")

    def _map_fields(self, raw: bytes, sep: bytes) -> bytes:
        """Each ``name=value`` field between ``sep``s with its value mapped; names, separators and fields
        without ``=`` stay byte for byte."""
        fields = raw.split(sep)
        for i, field in enumerate(fields):
            name, eq, value = field.partition(b"=")
            if eq:
                fields[i] = name + eq + self.values.map(value)
        return sep.join(fields)

    def map_headers(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        out = []
        for name, value in headers:
            ln = name.lower()
            if ln in ("referer", "origin"):
                value = self.map_url(value)
            elif ln == "cookie":
                value = self.map_cookie(value)
            out.append((name, value))
        return out

    def form_mapper(self, hold: int, limit: int) -> FormBodyMapper:
        return FormBodyMapper(self.form_values, hold, limit)

    def body_mapper(self, headers: list[tuple[str, str]], hold: int, limit: int) -> FormBodyMapper | None:
        """A mapper for a request body that is ``x-www-form-urlencoded`` and not compressed (a
        ``Content-Encoding``'d body is relayed as it is); ``None`` for every other body."""
        ctype = ""
        for name, value in headers:
            ln = name.lower()
            if ln == "content-type":
                ctype = value
            elif ln == "content-encoding" and value.strip().lower() not in ("", "identity"):
                return None
        if ctype.split(";", 1)[0].strip().lower() != FORM_TYPE:
            return None
        return self.form_mapper(hold, limit)


async def client_body(watch: ClientWatch) -> AsyncIterator[bytes]:
    """The client's body in upstream's terms: the client leaving mid-upload is ``BodySourceStopped``. (Here, not
    in ``publisher.app``: an async generator, which mypyc cannot compile, and ``app`` is compiled.)"""
    try:
        async for chunk in watch.body():
            yield chunk
    except ClientGone as exc:
        raise BodySourceStopped(str(exc)) from exc


async def prepare_body(
    source: AsyncIterator[bytes], mapper: FormBodyMapper, hold: int
) -> tuple[AsyncIterator[bytes], int | None]:
    """The mapped body and its length when it is known before the origin request is sent.

    Up to ``hold`` input bytes are read first: a body that ends within them (every ordinary form) is
    sent with an exact ``Content-Length``; a longer one is streamed (``None``: chunked to the origin),
    the mapper holding no more than its own bound.
    """
    it = source.__aiter__()
    held: list[bytes] = []
    size = 0
    ended = True
    async for chunk in it:
        held.append(mapper.feed(chunk))
        size += len(chunk)
        if size > hold:
            ended = False
            break
    if ended:
        whole = b"".join(held) + mapper.finish()

        async def one() -> AsyncIterator[bytes]:
            if whole:
                yield whole

        return one(), len(whole)

    async def rest() -> AsyncIterator[bytes]:
        for piece in held:
            if piece:
                yield piece
        async for chunk in it:
            out = mapper.feed(chunk)
            if out:
                yield out
        tail = mapper.finish()
        if tail:
            yield tail
        if mapper.unmapped_runs or mapper.passed_through:
            log.info(
                "form body: %d value(s) without a safe point passed on unmapped; %s",
                mapper.unmapped_runs,
                "bytes past map_request_body_bytes relayed unmapped" if mapper.passed_through else "mapped to the end",
            )

    return rest(), None
