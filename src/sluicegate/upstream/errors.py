"""What can go wrong talking to an upstream, in upstream's own terms: the only exceptions it raises.

``OriginError`` and its kinds are failures of the far side (connect, a bad or short response); their
``kind`` is the short word used as a metrics label and in the log. ``BodySourceStopped`` is the near
side: the caller's request body iterator raises it when its source stops (the caller's client left),
and the exchange ends with it, so the caller can tell "my client went" from "the origin failed"
without upstream knowing what a client is. Imports nothing.
"""

from __future__ import annotations


class OriginError(Exception):
    """Talking to the origin failed; ``kind`` names how (metrics label, log)."""

    kind = "upstream"


class OriginConnectError(OriginError):
    kind = "connect"


class OriginProtocolError(OriginError):
    """The origin's bytes are not a valid HTTP/1.1 response (or break our bounds)."""

    kind = "bad_response"


class OriginClosedError(OriginError):
    """The connection ended before the response head."""

    kind = "disconnected"


class OriginBodyError(OriginError):
    """The connection failed or ended before the end of the response body."""

    kind = "upstream_read"


class BodySourceStopped(Exception):
    """The request body's source stopped before its end (raised by the caller's body iterator)."""

    kind = "body_source_stopped"
