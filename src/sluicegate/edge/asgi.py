"""ASGI plumbing every face shares: the types, the two ways a request ends early, simple answers.

Owns: the ``Scope``/``Message``/``Receive``/``Send`` aliases; the ``DISCONNECT_HOOK``, ``BODY_WRITE`` and
``OBSERVE_HOOK`` scope extensions (``Tally``);
``ResponseAborted`` (how a handler tells the server "drop this connection now": raised after
``http.response.start`` it makes any ASGI server close the socket without the terminating chunk, so the
client sees an incomplete response instead of a clean-looking truncated one); ``ClientGone`` (the client
left: stop working for it); ``send_simple`` (a whole small answer: status, body, ``no-store``);
``header_list``/``encode_headers`` (str <-> the server's latin-1 bytes); and the log filter that keeps the
servers from printing a traceback for an abort we chose (we log those ourselves).

Must not know: any face, the config, the origin. Imports the standard library only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


DISCONNECT_HOOK = "sluicegate.on_disconnect"
"""Scope key a server may set (the native HTTP/1.1 core does): ``hook(callback)`` registers a callable the server
calls once, synchronously, when the client connection is lost before the response is complete. ``edge.client``
uses it instead of a task that waits on ``receive`` for ``http.disconnect`` (the portable way, kept for other
servers): no task per request, and the handler is cancelled in the same loop turn as the reset."""

BODY_WRITE = "sluicegate.body_write"
"""Scope key a server may set (the native HTTP/1.1 core does): ``write(body) -> bool`` writes one non-final,
non-empty response body chunk now, exactly as ``send({"type": "http.response.body", "body": body,
"more_body": True})`` would put it on the wire, without a coroutine; False (nothing written) when that ``send``
would have to wait (the client pushes back) or is not in its plain state (head not yet written, framing other
than chunked, response complete): the caller then uses ``send``. It bypasses every ``send`` wrapper between the
server and the app, so only the innermost handler may use it, and it counts what it wrote where a wrapper
would have (``inference.flow``: the request's ``bytes_out``). Used for a stream's events relayed from a socket
callback (one call instead of a message dict and a chain of coroutines per event)."""

OBSERVE_HOOK = "sluicegate.observe"
"""Scope key a server may set (the native HTTP/1.1 core does): ``hook(tally)`` hands the server the request's
``Tally``, which it then keeps current itself -- the response status and the time to the head when the app sends
``http.response.start``, the body bytes of every ``http.request`` it returns and every ``http.response.body`` it is
given -- exactly as a wrapper around ``receive``/``send`` would count them. ``server.observe`` uses it instead of
that wrapper (the portable way, kept for other servers): no closures per request and no extra coroutine per
message (pt4, issue 19)."""


class Tally(Protocol):
    """What a server keeps current under ``OBSERVE_HOOK`` (``observability.access.RequestInfo`` is one)."""

    started: float  # time.perf_counter() when the request began (set by the observer)
    status: int  # the response status; 0 until the head is sent
    ttfb: float  # seconds from ``started`` to the response head; -1.0 until then
    bytes_in: int  # request body bytes handed to the app
    bytes_out: int  # response body bytes the app sent


def count_sent(tally: Tally, message: Message) -> None:
    """Keep ``tally`` current for one message the app sends: the status and time to head, or the body's bytes.

    The one rule for both places that count: a core offering ``OBSERVE_HOOK`` and the observer's send wrapper."""
    if message["type"] == "http.response.start":
        tally.status = message["status"]
        tally.ttfb = time.perf_counter() - tally.started
    else:
        sent = message.get("body")
        if sent:
            tally.bytes_out += len(sent)


class ResponseAborted(Exception):
    """Abort the client connection (after the response head was committed)."""

    kind = "aborted"  # a short failure word for the access log and metrics


class ClientGone(Exception):
    """The client disconnected; stop working for it."""


def header_list(scope: Scope) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", ())]


def encode_headers(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]


async def send_simple(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[str, str]] | None = None,
    content_type: str = "text/plain; charset=utf-8",
    *,
    head_only: bool = False,
) -> None:
    """A whole small answer in two messages, never cached; ``head_only`` (a HEAD request) sends the
    headers the body would have, ``Content-Length`` included, and no body."""
    hdrs = [
        ("content-type", content_type),
        ("content-length", str(len(body))),
        ("cache-control", "no-store"),
        *(headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": encode_headers(hdrs)})
    await send({"type": "http.response.body", "body": b"" if head_only else body, "more_body": False})


class _DropAbortTracebacks(logging.Filter):
    """Servers log an app exception with a traceback; an abort we chose is logged by us instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ResponseAborted | ClientGone)


def quiet_expected_aborts() -> None:
    """Install the filter on the loggers of the ASGI servers we run under (uvicorn, granian)."""
    for name in ("uvicorn.error", "uvicorn", "granian", "granian.asgi", "_granian"):
        logging.getLogger(name).addFilter(_DropAbortTracebacks())
