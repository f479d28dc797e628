"""Prometheus metrics of the inference gateway, registered on the shared ``REGISTRY``.

Owns metric names and label sets, and ``Meters``: the labelled children the hot path uses, resolved once
per label tuple; label values are bounded (configured model/provider names, protocol ids, fixed outcome
words). Must not know about requests or sockets.
"""

from __future__ import annotations

from typing import Any, Protocol

from prometheus_client import Counter, Gauge, Histogram

from sluicegate.observability.metrics import REGISTRY

REQUESTS = Counter(
    "sluicegate_inference_requests_total",
    "Inference requests by protocol, model and final outcome (ok, upstream_status, failed, rejected, ...)",
    ["api", "model", "outcome"],
    registry=REGISTRY,
)
ATTEMPTS = Counter(
    "sluicegate_inference_attempts_total",
    "Upstream attempts by provider and result (ok, connect, timeout, status_429, status_5xx, ...)",
    ["provider", "result"],
    registry=REGISTRY,
)
FALLBACKS = Counter(
    "sluicegate_inference_fallbacks_total",
    "Requests answered by a target other than the first candidate",
    ["model"],
    registry=REGISTRY,
)
STREAM_ERRORS = Counter(
    "sluicegate_inference_stream_errors_total",
    "Failures after the first byte was sent, by kind (upstream_reset, idle_timeout, cap, client_gone)",
    ["provider", "kind"],
    registry=REGISTRY,
)
TOKENS = Counter(
    "sluicegate_inference_tokens_total",
    "Tokens reported by upstream usage, by model, provider and direction (input, output)",
    ["model", "provider", "direction"],
    registry=REGISTRY,
)
INFLIGHT = Gauge(
    "sluicegate_inference_inflight",
    "Upstream exchanges in flight, by provider",
    ["provider"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
BREAKER_OPEN = Counter(
    "sluicegate_inference_breaker_open_total",
    "Times a target's circuit breaker opened",
    ["provider"],
    registry=REGISTRY,
)
BREAKER_STATE = Gauge(
    "sluicegate_inference_breaker_state",
    "1 while a target's circuit breaker is open (or waiting for its half-open trial) in any worker, else 0",
    ["provider", "model"],
    multiprocess_mode="livemax",
    registry=REGISTRY,
)
FIRST_BYTE = Histogram(
    "sluicegate_inference_first_byte_seconds",
    "Request start to first body byte sent to the client",
    ["provider"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
TRANSLATED = Counter(
    "sluicegate_inference_translated_total",
    "Answers translated between protocols, by client API and upstream API, and what was dropped on request",
    ["client_api", "upstream_api", "dropped"],
    registry=REGISTRY,
)


class _Target(Protocol):
    @property
    def key(self) -> tuple[str, str]: ...


class Meters:
    """Metric children by label values, cached (only configured model names, so the cache is bounded)."""

    def __init__(self, models: frozenset[str]) -> None:
        self.models = models
        self._requests: dict[tuple[str, str, str], Any] = {}
        self._tokens: dict[tuple[str, str, str], Any] = {}

    def requests(self, api: str, model: str, outcome: str) -> Any:
        key = (api, model, outcome)
        child = self._requests.get(key)
        if child is None:
            child = REQUESTS.labels(api, model, outcome)
            if model in self.models:
                self._requests[key] = child
        return child

    def tokens(self, model: str, provider: str, direction: str) -> Any:
        key = (model, provider, direction)
        child = self._tokens.get(key)
        if child is None:
            child = self._tokens[key] = TOKENS.labels(model, provider, direction)
        return child

    def breaker(self, target: _Target, value: int) -> None:
        provider, model = target.key
        BREAKER_STATE.labels(provider, model).set(value)
