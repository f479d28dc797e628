"""What the governor needs from state, as three narrow interfaces, and the values they exchange.

``KeyStore`` (keys by hash, by id/name; create, disable, rotate, delete), ``LimitStore`` (one atomic
admission check-and-reserve per request, one settlement) and ``LedgerStore`` (batch insert, usage
report). The embedded SQLite store implements all three; Redis implements ``LimitStore``; PostgreSQL
``KeyStore`` + ``LedgerStore``. Must not know about HTTP, protocols or prices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from sluicegate.teams.keys import KeyRecord

WINDOW = 60.0  # seconds: rpm and tpm are counted over a sliding minute
Reason = Literal["rpm", "tpm", "streams", "budget", "unavailable"]
GroupBy = Literal["key", "model", "day"]


@dataclass(slots=True)
class Reservation:
    """What one admitted request holds until it settles."""

    req: str  # the request id (unique per request)
    key_id: str
    tokens: int  # tokens reserved in the rpm/tpm window
    cost: float  # USD reserved against the budget
    period: str  # budget period label the cost was reserved in ("2026-12" or "2026-12-06")
    held: bool = True  # False when the counter store was down and policy was fail_open: nothing to release
    at: float = 0.0  # admission time as the limit store recorded it (set by the store)
    model: str = ""  # the client model name (per-model windows)
    lease: Any = None  # the embedded store's teams.lease.Lease this request was admitted from, if any


@dataclass(slots=True, frozen=True)
class Denied:
    reason: Reason
    retry_after: float  # seconds until the same request could pass (>= 1 for rate limits)
    limit: float = 0.0
    used: float = 0.0


class StoreUnavailable(Exception):
    """The store cannot be reached or did not answer in time (policy decides what admission does)."""


LEDGER_COLUMNS = (
    "ts", "request_id", "key_id", "key_name", "model", "provider", "upstream_model", "attempts", "status",
    "outcome", "input_tokens", "output_tokens", "cached_tokens", "estimated", "cost", "ttfb_ms", "duration_ms",
)
LedgerRow = tuple[Any, ...]  # values in LEDGER_COLUMNS order


class KeyStore(Protocol):
    def create(self, record: KeyRecord, digest: bytes) -> None: ...
    def by_hash(self, digest: bytes) -> KeyRecord | None: ...
    def get(self, ident: str) -> KeyRecord | None: ...
    def list_keys(self) -> list[KeyRecord]: ...
    def set_enabled(self, ident: str, enabled: bool) -> bool: ...
    def rotate(self, ident: str, digest: bytes, hint: str) -> bool: ...
    def delete(self, ident: str) -> bool: ...
    def count(self) -> int: ...
    def close(self) -> None: ...


class LimitStore(Protocol):
    async def admit(self, key: KeyRecord, res: Reservation, now: float) -> Denied | None: ...
    async def settle(self, key: KeyRecord, res: Reservation, tokens: int, cost: float) -> None: ...
    async def reap(self, now: float) -> int: ...
    async def close(self) -> None: ...


class LedgerStore(Protocol):
    def insert(self, rows: list[LedgerRow]) -> None: ...
    def prune(self, before: float) -> int: ...
    def usage(self, by: GroupBy, since: float) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...
