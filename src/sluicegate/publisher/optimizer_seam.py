"""The one seam between asset routes and the image optimizer (issue 16 §3, engineer ``images``).

The contract, agreed here so that both sides can build on it:

* Config: an asset route's ``image_optimizer`` table (``[[publisher.routes]]``, ``config/routes.py``) is
  the optimizer's: its type is the images config model (``config/images.py``), so its errors are
  ``file:line: key`` like every other key, and ``Settings`` checks that its profile set exists. The profile sets
  (``[image_optimizer.profile_sets.<name>]``) are a top-level section of the images side.
* Build: ``build(route, settings)`` is called once per asset route when the app is built. With
  ``image_optimizer`` set it calls ``sluicegate.images.route_optimizer(route, settings)``, which returns an
  ``AssetOptimizer`` (or ``None`` when it is disabled for the route). Without the images package such a
  config fails at build time with a clear message.
* Request: for every GET/HEAD on the route, before the backend is asked, ``AssetRoute`` calls
  ``await optimizer.maybe_optimize(exchange, send)``. ``True``: the optimizer answered the request (sent
  a complete response through ``send``); ``False``: the original streams through unchanged, exactly as
  without an optimizer (e.g. ``.svg``, the operator's debug switch, not an image).
* ``AssetExchange`` gives the optimizer what it may use and nothing more: the request facts (method,
  public path, the client's own query string even when the route strips it before the backend, the
  client's headers), ``fetch()`` (the backend request with the route's outbound header allowlist, Host,
  query policy and S3 signing applied; the optimizer may drop allowlisted headers it replaces, e.g. the
  client's conditional ones, and remove its own parameter from the target's query; the caller owns the
  returned ``OriginResponse`` and must ``release()`` it), and ``response_headers()`` (the route's response
  policy: hop-by-hop, ``Set-Cookie``, HSTS and ``Clear-Site-Data`` removed, the request id added and
  ``cache_control`` applied last for 2xx/304), so an optimized response leaks no more than a streamed one.

Must not know what an image is.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from sluicegate.edge.asgi import Send

if TYPE_CHECKING:
    from sluicegate.config.model import Settings
    from sluicegate.config.routes import RouteSettings
    from sluicegate.upstream.http1 import OriginResponse

Headers = list[tuple[str, str]]


class AssetExchange:
    """One asset request as the optimizer sees it (built by ``AssetRoute`` only when an optimizer is set)."""

    __slots__ = ("_fetch", "_response_headers", "client_query", "headers", "method", "path", "request_id",
                 "route", "target")

    def __init__(
        self,
        *,
        route: RouteSettings,
        method: str,
        path: str,
        target: str,
        client_query: bytes,
        headers: Headers,
        request_id: str,
        fetch: Callable[[str, Sequence[tuple[str, str]], frozenset[str], str | None], Awaitable[OriginResponse]],
        response_headers: Callable[[int, Headers], Headers],
    ) -> None:
        self.route = route
        self.method = method  # "GET" or "HEAD"
        self.path = path  # the public, decoded path
        self.target = target  # the backend target (path after rewrite + query per policy), unsigned
        self.client_query = client_query  # the client's query string as sent (profile selection)
        self.headers = headers  # the client's request headers (read only; never forwarded wholesale)
        self.request_id = request_id
        self._fetch = fetch
        self._response_headers = response_headers

    async def fetch(
        self, method: str = "GET", extra: Sequence[tuple[str, str]] = (), *, drop: frozenset[str] = frozenset(),
        target: str | None = None,
    ) -> OriginResponse:
        """Ask the backend for ``target`` (allowlisted client headers, less those named in ``drop``
        (lower-case), + ``extra``; signed when the route is S3). ``target``: this exchange's own target with
        query parameters removed (the optimizer's profile parameter), never another path. Raises
        ``upstream.errors.OriginError``/``TimeoutError`` like any upstream request."""
        if target is not None and target.partition("?")[0] != self.target.partition("?")[0]:
            raise ValueError("an optimizer may only change the query of the route's target")
        return await self._fetch(method, extra, drop, target)

    def response_headers(self, status: int, headers: Headers) -> Headers:
        """The route's response header policy applied to ``headers`` (call it last)."""
        return self._response_headers(status, headers)


class AssetOptimizer(Protocol):
    async def maybe_optimize(self, exchange: AssetExchange, send: Send) -> bool:
        """Answer the request (``True``) or leave it to the plain streamed relay (``False``)."""
        ...


def build(route: RouteSettings, settings: Settings) -> AssetOptimizer | None:
    """The route's optimizer, or ``None`` (no ``image_optimizer`` table, or the images side says off)."""
    if not route.image_optimizer:
        return None
    try:
        images = importlib.import_module("sluicegate.images")
    except ImportError as exc:
        raise ValueError(
            f"publisher.routes[{route.name}].image_optimizer: the image optimizer is not part of this build ({exc})"
        ) from None
    factory = images.route_optimizer
    optimizer: AssetOptimizer | None = factory(route, settings)
    return optimizer
