"""One metrics surface for both faces of the proxy (Prometheus text format on the admin listener).

Owns metric names, label sets and rendering. With ``sluicegate serve`` every worker process writes its
values to files in ``PROMETHEUS_MULTIPROC_DIR`` (set by the supervisor before the workers start), and the
supervisor's ``/metrics`` sums them: one scrape = the whole instance, whatever the worker count; counters
of a worker that exited (crash, reload) stay in the sum. Without that variable (the app run in-process by
another ASGI server, or tests) values live in this process's ``REGISTRY``. Label values are bounded
(fixed words, configured names). Modules define their metrics against ``REGISTRY``.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)
_TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

# ---- every request, both faces (server wrapper) ------------------------------------------------------
REQUESTS = Counter(
    "sluicegate_requests_total",
    "Requests answered, by face (publisher, inference, none), route (gate route or inference API; "
    "'rejected' when the proxy answered itself) and status class",
    ["face", "route", "status_class"],
    registry=REGISTRY,
)
DURATION = Histogram(
    "sluicegate_request_duration_seconds",
    "Request start to the last response byte handed to the server, by face",
    ["face"],
    buckets=_TIME_BUCKETS,
    registry=REGISTRY,
)
FIRST_BYTE = Histogram(
    "sluicegate_response_first_byte_seconds",
    "Request start to the response head handed to the server (time to first byte), by face",
    ["face"],
    buckets=_TIME_BUCKETS,
    registry=REGISTRY,
)
BODY_BYTES = Counter(
    "sluicegate_body_bytes_total",
    "Body bytes by face and direction (in = from clients, out = to clients)",
    ["face", "direction"],
    registry=REGISTRY,
)
INFLIGHT = Gauge(
    "sluicegate_inflight_requests",
    "Requests being served now (streams included), by face",
    ["face"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)

# ---- publisher face -------------------------------------------------------------------------------
PUBLISHER_ERRORS = Counter(
    "sluicegate_publisher_errors_total",
    "Publisher failures by stage (before_commit / after_commit / client) and kind",
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
    "Body bytes read from the origin (direction=from_origin); bytes sent to clients are "
    "sluicegate_body_bytes_total{face=\"publisher\",direction=\"out\"}",
    ["direction"],
    registry=REGISTRY,
)
PUBLISHER_REWRITES = Counter(
    "sluicegate_publisher_rewrites_total",
    "Responses whose body went through a rewriter, by processor kind (html, flight, text, ...)",
    ["kind"],
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
def publisher_error(stage: str, kind: str) -> Counter:
    return PUBLISHER_ERRORS.labels(stage, kind)


@functools.cache
def publisher_rewrite(kind: str) -> Counter:
    return PUBLISHER_REWRITES.labels(kind)


@functools.cache
def request(face: str, route: str, status_class: str) -> Counter:
    return REQUESTS.labels(face, route, status_class)


SLICE_PAUSES = Counter(
    "sluicegate_publisher_slice_pauses_total",
    "Pauses of sliced body transforms, by pause: lane (two loop iterations, other work waiting or not known "
    "to be absent) or light (one iteration: the response was alone on the loop); docs/fairness.md",
    ["pause"],
    registry=REGISTRY,
)
SLICE_PAUSES_LANE = SLICE_PAUSES.labels("lane")
SLICE_PAUSES_LIGHT = SLICE_PAUSES.labels("light")
SLICES_STRETCHED = Counter(
    "sluicegate_publisher_slices_stretched_total",
    "Spent slices of body transforms that ran on without a pause: nothing else was ready on the loop "
    "(publisher.slicing.Slice.spent; docs/fairness.md)",
    registry=REGISTRY,
)


@functools.cache
def work_bound(bound: str) -> Counter:
    return PUBLISHER_WORK_BOUNDS.labels(bound)


FROM_ORIGIN_BYTES = PUBLISHER_BYTES.labels("from_origin")


def observe(hist: Histogram, value: float) -> None:
    """``hist.observe(value)`` for a histogram without labels, on a per-request path: prometheus-client keeps
    non-cumulative bucket values and its upper bounds sorted (``+Inf`` last), so one bisect and two value
    updates do what ``observe``'s validity check and Python loop over the buckets do."""
    hist._sum.inc(value)  # type: ignore[attr-defined]
    hist._buckets[bisect.bisect_left(hist._upper_bounds, value)].inc(1)  # type: ignore[attr-defined]


class _Later:
    """Counter increments and histogram observations made on a per-request path, written once at the end of the
    event-loop turn (summed per value): under ``sluicegate serve`` every value update is a write to a shared
    file, and under load several requests end in one turn. Runs before the loop polls again (``call_soon``), as
    ``server.observe`` does for the request metrics; outside a running loop the update is made at once."""

    __slots__ = ("counts", "observed", "scheduled")

    def __init__(self) -> None:
        self.counts: dict[object, float] = {}  # prometheus value object -> amount to add
        self.observed: list[tuple[Histogram, float]] = []
        self.scheduled = False

    def schedule(self) -> None:
        if self.scheduled:
            return
        try:
            asyncio.get_running_loop().call_soon(self.flush)
        except RuntimeError:  # no loop (tools, tests): now
            self.flush()
            return
        self.scheduled = True

    def flush(self) -> None:
        self.scheduled = False
        counts, self.counts = self.counts, {}
        observed, self.observed = self.observed, []
        for value, amount in counts.items():
            value.inc(amount)  # type: ignore[attr-defined]
        for hist, v in observed:
            observe(hist, v)


_LATER = _Later()


def inc_later(counter: Counter, amount: float) -> None:
    """``counter.inc(amount)`` for a counter child (labels resolved) on a per-request path, written with the
    loop turn's other increments of it (``_Later``). ``amount`` >= 0 (0: nothing to write)."""
    if amount > 0:
        value = counter._value  # type: ignore[attr-defined]
        counts = _LATER.counts
        counts[value] = counts.get(value, 0.0) + amount
        _LATER.schedule()
    elif amount < 0:
        counter.inc(amount)  # raises, as prometheus-client does


def observe_later(hist: Histogram, value: float) -> None:
    """``observe(hist, value)`` at the end of the loop turn (``_Later``)."""
    _LATER.observed.append((hist, value))
    _LATER.schedule()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def render(extra: CollectorRegistry | None = None) -> bytes:
    """Prometheus text: the sum over all workers when running multi-process, plus ``extra`` (supervisor's)."""
    from prometheus_client import generate_latest  # the exposition: not imported by a worker (``promlazy``)

    path = multiprocess_dir()
    if path is not None:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    return body + (generate_latest(extra) if extra is not None else b"")
