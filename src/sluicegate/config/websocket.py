"""``[websocket]``: WebSocket proxying on publisher routes (``publisher.websocket`` switches it on/off).

Owns the bounds of a tunnel: how long it may sit idle, the largest message relayed, how many tunnels one
worker holds. Must not know about sockets.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from sluicegate.config.types import Duration


class WebSocketSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # No frame byte in either direction for this long: both sides get close 1001 and the tunnel ends.
    idle_timeout: Duration = Field(default=300.0, gt=0, le=86400)
    # Largest message (sum of its frames' payloads, as sent on the wire) relayed; over it both sides get
    # close 1009 ("message too big") before any byte of the offending frame is forwarded.
    max_message_bytes: int = Field(default=16 * 1024 * 1024, ge=125, le=2**40)
    # Tunnels open at once per worker process; over it an upgrade is answered 503.
    max_connections: int = Field(default=10_000, ge=1, le=1_000_000)
    # Bytes read from one side and not yet written by the other before reading from it pauses.
    buffer_bytes: int = Field(default=256 * 1024, ge=4096, le=64 * 1024 * 1024)
