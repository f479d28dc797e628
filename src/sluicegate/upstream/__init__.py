"""The wire to an upstream: ``http1`` (pooled HTTP/1.1 client for one authority, llhttp framing), ``pools``
(pools per authority, bounded), ``proxy`` (outbound proxies from the environment, the CONNECT tunnel) and
``errors`` (its only exception kinds). No ASGI, no faces: callers bound its waits (``edge.deadline``) and map
its errors."""
