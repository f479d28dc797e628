"""Per-worker admission leases for the embedded (SQLite) limit store: exact limits without a write per request.

While a key is far below every limit, the admission transaction that admits one request may also
grant its worker a **lease**: ``slots`` more admissions, with their tokens (``tpm``), budget (``cost``)
and concurrent-stream slots, for ``lease_ttl`` seconds. The lease is written into the shared counters
like real admissions (one ``hits`` row with ``n = slots`` stamped at the lease's *end*, one ``inflight``
row holding the stream slots and the budget reservation), so every other worker already counts it:
admitting locally against it can never push a key over a limit. Local admission is a few Python
comparisons; the next transaction (lease spent, expired, or a timer at its end) **returns the unused
part**: the ``hits`` row shrinks to what was used, stamped at the last use (never earlier than a real
admission, so the sliding window never forgets one early), stream slots shrink to the requests still
in flight, the budget reservation to what those still hold.

Grant rule: a lease is at most ``1/LEASE_FRACTION`` of the remaining headroom of every limit of the
key (and at most ``lease_max`` admissions, the admitting request being its first), and only when that
leaves at least two more; near a limit there are no new leases and every admission is the exact
transaction. Keys with per-model windows are never leased. A refusal is only issued when no other
worker holds a live lease on the key (else the refused request waits for those leases to end and be
returned, at most ``lease_ttl`` + 2 x ``GRACE``), so unused leased slots never cause a refusal
that the exact store would not have made, unless their holder stalled for more than ``GRACE`` (then
the leased slots count as used: the safe side).

Owns the lease's local state and its SQL (called inside the store's transactions). Must not know
about HTTP, protocols, prices or the event loop.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass, field

from sluicegate.teams.keys import KeyRecord
from sluicegate.teams.store import Reservation

LEASE_FRACTION = 8  # a lease takes at most 1/8 of what is left under each limit
GRACE = 0.1  # seconds after a lease's end by which its holder must have returned it
_SPEND = ("INSERT INTO spend (key_id, period, spent, reserved) VALUES (?, ?, ?, 0) ON CONFLICT (key_id, period) "
          "DO UPDATE SET spent = spent + excluded.spent, reserved = max(reserved - ?, 0)")


@dataclass(eq=False)
class Lease:
    """What one worker may still admit for one key without a transaction, and what it did with it."""

    id: str
    key_id: str
    period: str
    at: float  # store clock (seconds) when granted
    expires: float  # store clock when the lease ends: its hits row is stamped here until returned
    deadline: float  # time.monotonic() after which it admits nothing more
    slots: int
    tokens: int
    cost: float
    streams: int  # concurrent requests it holds (0: the key has no max_streams)
    window: bool  # the key has rpm/tpm: the lease has a hits row
    inflight: bool  # the key has max_streams or a budget: the lease has an inflight row
    budget: bool  # the key has a budget: the lease reserved ``cost`` in ``spend``
    used: int = 0
    used_tokens: int = 0  # reserved tokens of lease requests, settled ones at their reported count
    live: int = 0  # lease requests still in flight
    live_cost: float = 0.0  # budget still reserved by lease requests in flight
    spent: float = 0.0  # settled cost of lease requests
    last: float = 0.0  # store clock of the last admission under the lease
    row_ts: float = 0.0  # the hits row's ts (``expires`` until returned, then ``last``)
    returned: bool = False
    # requests that ended since it was returned, not yet applied: count, tokens minus reserved, reserved
    # cost, settled cost (``settle_returned`` applies them in the next transaction)
    late: tuple[int, int, float, float] = (0, 0, 0.0, 0.0)
    undo: tuple[float, bool] = field(default=(0.0, False))  # (row_ts, returned) before ``give_back``

    @property
    def row(self) -> str:
        return "L:" + self.id

    def take(self, key: KeyRecord, res: Reservation, now: float) -> bool:
        """Admit ``res`` from this lease if it still covers it (no I/O)."""
        if self.returned or res.period != self.period or now >= self.expires or time.monotonic() >= self.deadline:
            return False
        if self.used >= self.slots:
            return False
        need = _need(key, res)
        if key.tpm and self.used_tokens + need > self.tokens:
            return False
        if key.budget is not None and self.live_cost + self.spent + res.cost > self.cost:
            return False
        if self.streams and self.live >= self.streams:
            return False
        self.used += 1
        self.used_tokens += need
        self.live += 1
        self.live_cost += res.cost
        self.last = max(self.last, min(now, self.expires))
        res.lease = self
        res.at = now
        return True

    def settle(self, key: KeyRecord, res: Reservation, tokens: int, cost: float) -> None:
        """A lease request ended: local bookkeeping while the lease is held, else queued for ``settle_returned``."""
        if self.returned:
            n, d, res_cost, spent = self.late
            self.late = (n + 1, d + (tokens - _need(key, res) if key.tpm else 0), res_cost + res.cost, spent + cost)
            return
        if key.tpm:
            self.used_tokens += tokens - _need(key, res)
        self.live -= 1
        self.live_cost -= res.cost
        self.spent += cost


def _need(key: KeyRecord, res: Reservation) -> int:
    return min(res.tokens, key.tpm) if key.tpm else res.tokens


def grant(conn: sqlite3.Connection, key: KeyRecord, res: Reservation, now: float, owner: str, lease_max: int,
          ttl: float, n: int, tokens: int, live: int, spent: float, reserved: float) -> Lease | None:
    """Inside the admission transaction, once ``res`` passed the exact check: if the key is far from every
    limit, admit ``res`` as the first admission of a new lease (written in its place) and return the lease.

    ``n``/``tokens``/``live``/``reserved`` are the key's counters as they are *with* ``res``."""
    if lease_max < 2 or key.model_limits:
        return None
    more = lease_max - 1  # admissions the lease holds besides res
    need = max(_need(key, res), 1)
    if key.rpm:
        more = min(more, (key.rpm - n) // LEASE_FRACTION)
    if key.tpm:
        more = min(more, (key.tpm - tokens) // LEASE_FRACTION // need)
    streams = 0
    if key.max_streams:
        streams = min(more, (key.max_streams - live) // LEASE_FRACTION)
        if streams < 1:
            return None
    if key.budget is not None and res.cost > 0:
        more = min(more, int((key.budget - spent - reserved) / LEASE_FRACTION / res.cost))
    if more < 2:
        return None
    slots = more + 1
    lease = Lease(os.urandom(8).hex(), key.id, res.period, now, now + ttl, time.monotonic() + ttl, slots,
                  slots * need, slots * res.cost, streams + 1 if key.max_streams else 0, bool(key.rpm or key.tpm),
                  bool(key.max_streams or key.budget is not None), key.budget is not None, row_ts=now + ttl)
    if lease.window:
        conn.execute("INSERT INTO hits (key_id, ts, req, tokens, n) VALUES (?, ?, ?, ?, ?)",
                     (key.id, lease.expires, lease.row, lease.tokens, slots))
        conn.execute("INSERT INTO win VALUES (?, ?, ?) ON CONFLICT (key_id) DO UPDATE SET n = n + excluded.n, "
                     "tokens = tokens + excluded.tokens", (key.id, slots, lease.tokens))
    if lease.inflight:
        conn.execute("INSERT INTO inflight (key_id, req, pid, period, cost, n) VALUES (?, ?, ?, ?, ?, ?)",
                     (key.id, lease.row, os.getpid(), res.period, lease.cost, lease.streams or slots))
    if lease.budget:
        conn.execute("INSERT INTO spend VALUES (?, ?, 0, ?) ON CONFLICT (key_id, period) "
                     "DO UPDATE SET reserved = reserved + excluded.reserved", (key.id, res.period, lease.cost))
    conn.execute("INSERT INTO leases (key_id, id, owner, pid, expires) VALUES (?, ?, ?, ?, ?)",
                 (key.id, lease.id, owner, os.getpid(), lease.expires))
    # res is the lease's first admission (so it settles in memory too)
    lease.used, lease.used_tokens, lease.live, lease.live_cost, lease.last = 1, need, 1, res.cost, now
    res.lease = lease
    res.at = now
    return lease


def give_back(conn: sqlite3.Connection, lease: Lease) -> None:
    """Return the unused part of a lease (inside a transaction); the lease admits nothing more."""
    lease.undo = (lease.row_ts, lease.returned)
    lease.returned = True
    if lease.window:
        row = conn.execute("SELECT n, tokens FROM hits WHERE key_id = ? AND ts = ? AND req = ?",
                           (lease.key_id, lease.row_ts, lease.row)).fetchone()
        if row is not None:  # (else it already left the window, taking its counts with it)
            if lease.used:
                conn.execute("UPDATE hits SET ts = ?, n = ?, tokens = ? WHERE key_id = ? AND ts = ? AND req = ?",
                             (lease.last, lease.used, lease.used_tokens, lease.key_id, lease.row_ts, lease.row))
                lease.row_ts = lease.last
            else:
                conn.execute("DELETE FROM hits WHERE key_id = ? AND ts = ? AND req = ?",
                             (lease.key_id, lease.row_ts, lease.row))
            conn.execute("UPDATE win SET n = n + ?, tokens = tokens + ? WHERE key_id = ?",
                         (lease.used - row[0], lease.used_tokens - row[1], lease.key_id))
    if lease.inflight:
        held = conn.execute("SELECT 1 FROM inflight WHERE key_id = ? AND req = ?", (lease.key_id, lease.row)).fetchone()
        if held is not None:
            if lease.live > 0:
                conn.execute("UPDATE inflight SET n = ?, cost = ? WHERE key_id = ? AND req = ?",
                             (lease.live, max(lease.live_cost, 0.0), lease.key_id, lease.row))
            else:
                conn.execute("DELETE FROM inflight WHERE key_id = ? AND req = ?", (lease.key_id, lease.row))
        if lease.budget:
            release = lease.cost - max(lease.live_cost, 0.0) if held is not None else 0.0  # reaped: released then
            conn.execute(_SPEND, (lease.key_id, lease.period, lease.spent, release))
    conn.execute("DELETE FROM leases WHERE key_id = ? AND id = ?", (lease.key_id, lease.id))


def undo(lease: Lease) -> None:
    """The transaction that returned the lease rolled back: it is held again."""
    lease.row_ts, lease.returned = lease.undo


def settle_returned(conn: sqlite3.Connection, key: KeyRecord, lease: Lease) -> None:
    """Requests of a returned lease that ended since the last transaction: move the returned rows by them
    (one set of statements per lease, however many requests)."""
    n, d, res_cost, cost = lease.late
    lease.late = (0, 0, 0.0, 0.0)
    if not n:
        return
    if key.tpm and lease.window and d and conn.execute(
            "UPDATE hits SET tokens = tokens + ? WHERE key_id = ? AND ts = ? AND req = ?",
            (d, key.id, lease.row_ts, lease.row)).rowcount:
        conn.execute("UPDATE win SET tokens = tokens + ? WHERE key_id = ?", (d, key.id))
    gone = 0
    if lease.inflight:
        gone = conn.execute("UPDATE inflight SET n = n - ?, cost = max(cost - ?, 0) WHERE key_id = ? AND req = ?",
                            (n, res_cost, key.id, lease.row)).rowcount
        conn.execute("DELETE FROM inflight WHERE key_id = ? AND req = ? AND n <= 0", (key.id, lease.row))
    if lease.budget:
        conn.execute(_SPEND, (key.id, lease.period, cost, res_cost if gone else 0.0))


def others_live(conn: sqlite3.Connection, key_id: str, owner: str, now: float) -> float:
    """The latest end of another holder's unreturned lease on ``key_id`` still within GRACE, else 0."""
    (until,) = conn.execute("SELECT max(expires) FROM leases WHERE key_id = ? AND owner != ? AND expires + ? > ?",
                            (key_id, owner, GRACE, now)).fetchone()
    return float(until or 0.0)
