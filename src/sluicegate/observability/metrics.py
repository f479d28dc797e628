"""One metrics surface for both faces of the proxy (Prometheus text format at /_sluicegate/metrics).

Metrics are per worker process (each worker has its own registry); scrape each worker or run one
worker per port when exact totals matter. Modules define their metrics against ``REGISTRY``.
"""

from __future__ import annotations

import functools

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

PUBLISHER_RESPONSES = Counter(
    "sluicegate_publisher_responses_total",
    "Publisher responses by gate route and status class",
    ["route", "status_class"],
    registry=REGISTRY,
)
PUBLISHER_ERRORS = Counter(
    "sluicegate_publisher_errors_total",
    "Publisher failures by stage (before_commit / after_commit) and kind",
    ["stage", "kind"],
    registry=REGISTRY,
)
PUBLISHER_TTFB = Histogram(
    "sluicegate_publisher_upstream_headers_seconds",
    "Time from request start to origin response headers",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
PUBLISHER_BYTES = Counter(
    "sluicegate_publisher_body_bytes_total",
    "Body bytes relayed, by direction (from_origin / to_client)",
    ["direction"],
    registry=REGISTRY,
)

PUBLISHER_WORK_BOUNDS = Counter(
    "sluicegate_publisher_work_bound_total",
    "Rewritten responses stopped by a per-response work bound, by bound (config key)",
    ["bound"],
    registry=REGISTRY,
)


# Label children cached: ``.labels()`` costs a lock and a dict build per call, and every label set
# here is small and fixed (routes x status classes, error stages x kinds).
@functools.cache
def publisher_response(route: str, status_class: str) -> Counter:
    return PUBLISHER_RESPONSES.labels(route, status_class)


@functools.cache
def publisher_error(stage: str, kind: str) -> Counter:
    return PUBLISHER_ERRORS.labels(stage, kind)


@functools.cache
def work_bound(bound: str) -> Counter:
    return PUBLISHER_WORK_BOUNDS.labels(bound)


FROM_ORIGIN_BYTES = PUBLISHER_BYTES.labels("from_origin")


def render() -> bytes:
    return generate_latest(REGISTRY)
