"""The HTTP/2 metrics (admin ``/metrics``, summed over workers): connections open, streams served, streams reset
and connections ended with GOAWAY, each by reason. Owns the names; must not know when they are counted.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from sluicegate.observability.metrics import REGISTRY

H2_OPEN = Gauge("sluicegate_http2_connections", "HTTP/2 client connections open now",
                multiprocess_mode="livesum", registry=REGISTRY)
H2_STREAMS = Counter("sluicegate_http2_streams_total", "HTTP/2 request streams handed to the app",
                     registry=REGISTRY)
H2_RESETS = Counter(
    "sluicegate_http2_stream_resets_total",
    "HTTP/2 streams reset, by reason: client (the client's RST_STREAM), refused (over max_concurrent_streams or "
    "draining), malformed (PROTOCOL_ERROR), aborted (failure after the head: INTERNAL_ERROR), window (no "
    "flow-control window for send_timeout: CANCEL)",
    ["reason"], registry=REGISTRY)
H2_GOAWAY = Counter(
    "sluicegate_http2_goaway_total",
    "HTTP/2 connections ended by the server with GOAWAY, by reason: drain, idle, head_timeout, calm (a flood "
    "bound: ENHANCE_YOUR_CALM), protocol (h2's connection errors), write_buffer (a client not reading)",
    ["reason"], registry=REGISTRY)
