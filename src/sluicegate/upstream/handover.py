"""Handing the rest of an origin response's body over to a caller that reads the socket itself.

Owns ``detach_body(response)``: for an ``http1.OriginResponse`` whose body is framed by ``Content-Length``,
the body bytes the client has parsed so far, the bytes still to come, the transport, and two hooks: ``done``
(the caller has read exactly the rest: the connection gets a fresh parser, its own protocol back, reading
resumed, and is reusable as after ``read()`` to the end) and ``lost`` (forwarded ``connection_lost``; returns
the client's ``OriginError``). Its caller is ``images.source`` (a source read straight into one buffer, no
bytes object per socket read). A friend of ``http1``: it reads and resets that module's connection state,
kept out of it so the client's own file stays as it is; ``tests/unit/images/test_source.py`` holds both to
the contract. Must not know who reads the body or what it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import NamedTuple

import httptools

from sluicegate.upstream.errors import OriginBodyError, OriginError
from sluicegate.upstream.http1 import OriginResponse, _Connection


class DetachedBody(NamedTuple):
    first: bytes  # body bytes already parsed by the client
    remaining: int  # bytes still to come (0: ``first`` is the whole body; nothing to install)
    transport: asyncio.Transport
    done: Callable[[], None]
    lost: Callable[[Exception | None], OriginError]


def detach_body(response: OriginResponse) -> DetachedBody | None:
    """The rest of a ``Content-Length`` body for the caller to read (before any ``read()``). With bytes
    remaining, the caller installs its own protocol on ``transport`` at once, forwards ``connection_lost``
    to ``lost`` and calls ``done`` after exactly ``remaining`` bytes. None: not framed by a length
    (chunked, until EOF), a HEAD, or the exchange has failed: the ordinary ``read()`` then."""
    conn = response._conn
    length = next((v for k, v in conn.headers if k.lower() == b"content-length"), b"")
    transport = conn.transport
    if conn.error is not None or conn.closed or conn.head_only or conn.until_eof or transport is None:
        return None
    if not length.isdigit():  # (llhttp refuses a response with both Content-Length and Transfer-Encoding)
        return None
    first = b"".join(conn.chunks)
    remaining = int(length) - len(first)
    if remaining < 0 or bool(remaining) == conn.complete:
        return None
    conn.chunks.clear()
    conn.buffered = 0
    if conn.reading_paused:  # paused at the client's high water: those bytes are taken now
        conn.reading_paused = False
        transport.resume_reading()
    return DetachedBody(first, remaining, transport, lambda: _done(conn, transport), lambda exc: _lost(conn, exc))


def _done(conn: _Connection, transport: asyncio.Transport) -> None:
    conn.parser = httptools.HttpResponseParser(conn)  # the old one stopped mid-body
    conn.complete = True
    transport.set_protocol(conn)
    if not conn.closed:
        transport.resume_reading()  # an idle connection still notices the origin closing it


def _lost(conn: _Connection, exc: Exception | None) -> OriginError:
    conn.connection_lost(exc)
    return conn.error or OriginBodyError("origin connection ended before the end of the body")
