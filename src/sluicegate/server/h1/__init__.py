"""The native HTTP/1.1 serving core (``[server] http_core = "native"``): asyncio/uvloop on httptools (llhttp).

One stage per module: ``framing`` (response heads and fixed answers, pure bytes), ``cycle`` (one
request/response exchange: ASGI ``receive``/``send``, the coalescing write path, abort-after-commit),
``protocol`` (one connection: parsing, keep-alive, deadlines, pipelining, flow control, hand-off to the
WebSocket tunnel or another protocol), ``serve`` (a worker's lifespan, listener, readiness and drain).
The ASGI app stays the portable entry point: the same ``server.app.SluicegateApp`` runs under uvicorn
(``http_core = "uvicorn"``) or any ASGI server.
"""
