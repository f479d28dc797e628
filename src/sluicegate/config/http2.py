"""``[http2]``: the bounds of HTTP/2 connections to clients (``[server] http2`` switches h2 on/off).

Owns the numbers the h2 server protocol (``server/h2``) advertises and enforces: concurrent streams, the
flow-control windows that bound what a client may make us buffer, the header-block cap, the idle and
stalled-window timeouts, and the flood budgets (RST_STREAM, SETTINGS, PING and other control frames).
Must not know about sockets.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from sluicegate.config.types import Duration


class Http2Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # SETTINGS_MAX_CONCURRENT_STREAMS advertised; a stream beyond it is refused (RST_STREAM REFUSED_STREAM),
    # a client at twice it has ignored the setting and the connection ends (GOAWAY).
    max_concurrent_streams: int = Field(default=100, ge=1, le=10_000)
    # Request body bytes a stream may have received and the app not yet read (its flow-control window).
    stream_buffer_bytes: int = Field(default=256 * 1024, ge=16 * 1024, le=2**31 - 1)
    # The same, summed over the connection (the connection window): the most one client connection holds.
    connection_buffer_bytes: int = Field(default=1024 * 1024, ge=65535, le=2**31 - 1)
    # SETTINGS_MAX_HEADER_LIST_SIZE (decoded, as RFC 9113 counts it) and the cap on one compressed header
    # block (HEADERS + CONTINUATION frames): over either the connection ends (GOAWAY ENHANCE_YOUR_CALM).
    max_header_bytes: int = Field(default=64 * 1024, ge=4096, le=16 * 1024 * 1024)
    # No stream open and no frame for this long: GOAWAY(NO_ERROR) and close.
    idle_timeout: Duration = Field(default=60.0, gt=0, le=86400)
    # A response waiting this long for the client to open its flow-control window (or for the socket to
    # drain) is given up: RST_STREAM(CANCEL), the request ends as a client that left.
    send_timeout: Duration = Field(default=30.0, gt=0, le=86400)
    # Flood budgets per connection (token buckets: a burst of twice the rate, refilled at the rate per
    # second). Over one: GOAWAY(ENHANCE_YOUR_CALM) and close. Resets count client RST_STREAMs and streams
    # we refused (Rapid Reset, CVE-2023-44487); control frames are SETTINGS, PING, PRIORITY and empty
    # DATA/CONTINUATION frames.
    reset_rate: float = Field(default=100.0, gt=0, le=1e6)
    control_frame_rate: float = Field(default=500.0, gt=0, le=1e6)
