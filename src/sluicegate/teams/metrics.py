"""Prometheus metrics of team governance, registered on the shared ``REGISTRY``.

Owns metric names and label sets. The ``key`` label is a key *name* (never the secret), bounded per
process by ``[inference.teams] metrics_max_keys`` (further keys share ``key="other"``); ``outcome`` and
``reason`` are fixed words. Must not know about requests or stores.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from sluicegate.observability.metrics import REGISTRY

KEY_REQUESTS = Counter(
    "sluicegate_key_requests_total",
    "Inference requests by virtual key name and admission outcome (admitted, unauthorized, forbidden, "
    "rpm, tpm, streams, budget, unavailable)",
    ["key", "outcome"],
    registry=REGISTRY,
)
KEY_TOKENS = Counter(
    "sluicegate_key_tokens_total",
    "Tokens settled per virtual key (input, output, cached)",
    ["key", "direction"],
    registry=REGISTRY,
)
KEY_COST = Counter(
    "sluicegate_key_cost_usd_total",
    "Cost settled per virtual key, USD (from [inference.prices])",
    ["key"],
    registry=REGISTRY,
)
COUNTER_STORE_ERRORS = Counter(
    "sluicegate_teams_counter_store_errors_total",
    "Admissions that could not reach the limit-counter store, by the policy applied (fail_open, fail_closed)",
    ["policy"],
    registry=REGISTRY,
)
LEDGER_DROPPED = Counter(
    "sluicegate_teams_ledger_dropped_total",
    "Usage ledger rows dropped because the bounded queue (or the disk spool) was full",
    registry=REGISTRY,
)
LEDGER_WRITTEN = Counter(
    "sluicegate_teams_ledger_written_total", "Usage ledger rows written to the ledger store", registry=REGISTRY
)
LEDGER_SPOOLED = Counter(
    "sluicegate_teams_ledger_spooled_total",
    "Usage ledger rows spooled to local disk while the ledger store was unreachable",
    registry=REGISTRY,
)
LEDGER_STORE_DOWN = Gauge(
    "sluicegate_teams_ledger_store_down",
    "1 while the ledger store is unreachable (rows are spooled to disk and replayed later)",
    registry=REGISTRY,
    multiprocess_mode="max",
)
