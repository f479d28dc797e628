"""The numbers one h2 connection runs with, read once per worker from ``[http2]``, ``[timeouts]`` and
``[server] request_id_header`` (the response fields HPACK sends never-indexed).

Owns nothing but the values (a frozen dataclass, so connections never touch the config model), and which response
fields are never indexed. Imports no HTTP/2 library: a worker builds its ``Http2Switch`` from this at start, and
``h2``/``hpack`` (0.7 MiB resident) are imported by the first HTTP/2 connection (``connection``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Response fields sent as literals never indexed (RFC 7541 §6.2.3): values that change with every response, so
# they do not churn the HPACK dynamic table (encoding a response head this way costs a third of the CPU, for ~25
# more bytes), and secrets, so they are not exposed to compression-ratio attacks (RFC 7541 §7.1.3). The
# request-id header (``[server] request_id_header``) joins them in ``never_indexed``; ``request-id`` is the name
# some providers give their own id.
_VOLATILE = frozenset({b"date", b"request-id", b"content-length", b"etag", b"last-modified", b"expires", b"age",
                       b"content-range", b"location", b"traceparent"})
_SECRET = frozenset({b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"})


def never_indexed(request_id_header: str = "x-request-id") -> frozenset[bytes]:
    """The response field names sent never-indexed: the volatile and secret ones and the request-id header."""
    return _VOLATILE | _SECRET | {request_id_header.lower().encode("ascii")}


@dataclass(frozen=True, slots=True)
class H2Options:
    max_concurrent_streams: int = 100
    stream_buffer_bytes: int = 256 * 1024
    connection_buffer_bytes: int = 1024 * 1024
    max_header_bytes: int = 64 * 1024
    idle_timeout: float = 60.0
    send_timeout: float = 30.0
    header_timeout: float = 20.0
    reset_rate: float = 100.0
    control_frame_rate: float = 500.0
    never_indexed: frozenset[bytes] = never_indexed()  # response fields HPACK sends never-indexed

    @classmethod
    def from_settings(cls, settings: Any) -> H2Options:
        h = settings.http2
        return cls(
            max_concurrent_streams=h.max_concurrent_streams, stream_buffer_bytes=h.stream_buffer_bytes,
            connection_buffer_bytes=h.connection_buffer_bytes, max_header_bytes=h.max_header_bytes,
            idle_timeout=h.idle_timeout, send_timeout=h.send_timeout,
            header_timeout=settings.timeouts.client_header, reset_rate=h.reset_rate,
            control_frame_rate=h.control_frame_rate,
            never_indexed=never_indexed(settings.server.request_id_header),
        )
