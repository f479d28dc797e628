"""The numbers one h2 connection runs with, read once per worker from ``[http2]``, ``[timeouts]`` and
``[server] request_id_header`` (the response fields HPACK sends never-indexed).

Owns nothing but the values (a frozen dataclass, so connections never touch the config model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sluicegate.server.h2.headers import never_indexed


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
