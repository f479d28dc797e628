"""HTTP/2 to clients: the per-connection choice of h2 and the hand-over from the HTTP/1.1 protocol.

A worker builds one ``Http2Switch`` (``[server] http2``, bounds in ``[http2]``); the HTTP/1.1 protocol
that accepted a connection (uvicorn's, via ``server/h1guard.py``; a native core the same way) makes ONE
call with its first bytes, ``switch.take(transport, data, registry)``:

* ``True``: the connection is HTTP/2 now (``connection.H2Protocol`` is the transport's protocol, has
  registered itself in ``registry.connections`` and been fed ``data``); the caller retires (leaves the
  registry, stops its timers) and handles nothing more;
* ``False``: HTTP/1.1, the caller parses ``data`` as usual;
* ``None``: undecided (``data`` is a strict prefix of the h2 preface): the caller keeps the bytes and asks
  again with them plus the next read.

A TLS connection is h2 when ALPN chose ``h2`` (``server/tls.py`` offers it only when the switch exists);
a cleartext one when it opens with the 24-byte client preface ``PRI * HTTP/2.0...`` (h2c "prior
knowledge", RFC 9113 §3.3): no HTTP/1.1 request can begin with it, so plain h1 clients are never
misjudged. The h2c ``Upgrade:`` dance (removed from RFC 9113) and WebSocket over h2 (RFC 8441 extended
CONNECT) are not served: browsers open WebSockets over HTTP/1.1 when the server does not advertise
``SETTINGS_ENABLE_CONNECT_PROTOCOL``. Must not know the faces or the HTTP/1.1 protocol's internals.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sluicegate.server.h2.guard import PREFACE
from sluicegate.server.h2.options import H2Options

__all__ = ["PREFACE", "H2Options", "Http2Switch"]


class Http2Switch:
    __slots__ = ("app", "options")

    def __init__(self, app: Any, options: H2Options) -> None:
        self.app = app
        self.options = options

    def take(self, transport: asyncio.Transport, data: bytes, registry: Any) -> bool | None:
        """Make ``transport`` an HTTP/2 connection if it is one (see the module docstring)."""
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            if ssl_object.selected_alpn_protocol() != "h2":
                return False
        elif not data.startswith(PREFACE):
            if PREFACE.startswith(data):
                return None
            return False
        from sluicegate.server.h2.connection import H2Protocol

        protocol = H2Protocol(self.app, self.options, registry)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        protocol.data_received(data)
        return True

    @classmethod
    def from_settings(cls, app: Any, settings: Any) -> Http2Switch | None:
        """The worker's switch, or None with ``[server] http2 = false``."""
        if not settings.server.http2:
            return None
        return cls(app, H2Options.from_settings(settings))
