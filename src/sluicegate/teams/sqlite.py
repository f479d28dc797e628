"""The embedded state store: SQLite (WAL) under ``[inference.state] data_dir``, shared by the workers of one host.

Two files so ledger batches never hold the lock admission needs: ``state.db`` (keys, ledger) and
``limits.db`` (sliding-window hits, in-flight requests, budget spend, leases). The exact step is one
``BEGIN IMMEDIATE`` transaction (check and reserve together), so N worker processes see one counter:
the exact-limit guarantee; far below a key's limits that transaction also grants a lease
(``teams.lease``) from which the next admissions are made without one. A busy lock is retried with a
short asyncio sleep (the event loop never waits on SQLite's own sleeping busy handler) up to
``lock_timeout``, then ``StoreUnavailable``.
Connections are per process (re-opened after fork). Must not know about HTTP, protocols or prices.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from sluicegate.teams.keys import KeyRecord
from sluicegate.teams.lease import GRACE, Lease, give_back, grant, others_live, settle_returned, undo
from sluicegate.teams.store import (
    LEDGER_COLUMNS,
    WINDOW,
    Denied,
    GroupBy,
    LedgerRow,
    Reservation,
    StoreUnavailable,
)

_STATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, hash BLOB NOT NULL UNIQUE, hint TEXT NOT NULL,
  models TEXT NOT NULL, cidrs TEXT NOT NULL, rpm INTEGER, tpm INTEGER, max_streams INTEGER,
  budget REAL, period TEXT NOT NULL, enabled INTEGER NOT NULL, created REAL NOT NULL,
  model_limits TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS ledger (
  ts REAL NOT NULL, request_id TEXT NOT NULL, key_id TEXT, key_name TEXT, model TEXT, provider TEXT,
  upstream_model TEXT, attempts INTEGER, status INTEGER, outcome TEXT, input_tokens INTEGER,
  output_tokens INTEGER, cached_tokens INTEGER, estimated INTEGER, cost REAL, ttfb_ms REAL, duration_ms REAL
);
CREATE INDEX IF NOT EXISTS ledger_ts ON ledger (ts);
CREATE UNIQUE INDEX IF NOT EXISTS ledger_req ON ledger (request_id, ts);
"""
_LIMITS_SCHEMA = """
CREATE TABLE IF NOT EXISTS hits (
  key_id TEXT NOT NULL, ts REAL NOT NULL, req TEXT NOT NULL, tokens INTEGER NOT NULL, n INTEGER NOT NULL DEFAULT 1,
  PRIMARY KEY (key_id, ts, req)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS win (key_id TEXT PRIMARY KEY, n INTEGER NOT NULL, tokens INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inflight (
  key_id TEXT NOT NULL, req TEXT NOT NULL, pid INTEGER NOT NULL, period TEXT NOT NULL, cost REAL NOT NULL,
  n INTEGER NOT NULL DEFAULT 1, PRIMARY KEY (key_id, req)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS spend (
  key_id TEXT NOT NULL, period TEXT NOT NULL, spent REAL NOT NULL, reserved REAL NOT NULL,
  PRIMARY KEY (key_id, period)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
  key_id TEXT NOT NULL, id TEXT NOT NULL, owner TEXT NOT NULL, pid INTEGER NOT NULL, expires REAL NOT NULL,
  PRIMARY KEY (key_id, id)
) WITHOUT ROWID;
"""
SETTLE_DELAY = 0.02  # seconds a settlement may wait for an admission transaction to ride along with
_KEY_COLS = "id, name, hint, models, cidrs, rpm, tpm, max_streams, budget, period, enabled, created, model_limits"


def _connect(path: Path, schema: str) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=5.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, no fsync per commit
    conn.executescript(schema)
    conn.execute("PRAGMA busy_timeout=0")  # admission retries itself without blocking the loop
    return conn


def _record(row: tuple[Any, ...]) -> KeyRecord:
    return KeyRecord(id=row[0], name=row[1], hint=row[2], models=tuple(json.loads(row[3])),
                     cidrs=tuple(json.loads(row[4])), rpm=row[5], tpm=row[6], max_streams=row[7], budget=row[8],
                     period=row[9], enabled=bool(row[10]), created=row[11],
                     model_limits=tuple((m, r, t) for m, r, t in json.loads(row[12])))


class SqliteState:
    """Keys + ledger in ``state.db`` (``KeyStore``, ``LedgerStore``); safe across processes and threads."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "state.db"
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", 0) != os.getpid():
            conn = _connect(self.path, _STATE_SCHEMA)
            conn.execute("PRAGMA busy_timeout=5000")  # key admin + ledger batches: off the request path
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ---- KeyStore ----

    def create(self, record: KeyRecord, digest: bytes) -> None:
        r = record
        try:
            self._conn().execute(
                f"INSERT INTO keys ({_KEY_COLS}, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (r.id, r.name, r.hint, json.dumps(list(r.models)), json.dumps(list(r.cidrs)), r.rpm, r.tpm,
                 r.max_streams, r.budget, r.period, int(r.enabled), r.created,
                 json.dumps([list(m) for m in r.model_limits]), digest))
        except sqlite3.IntegrityError:
            raise ValueError(f"a key named {r.name!r} already exists") from None

    def by_hash(self, digest: bytes) -> KeyRecord | None:
        row = self._conn().execute(f"SELECT {_KEY_COLS} FROM keys WHERE hash = ?", (digest,)).fetchone()
        return _record(row) if row else None

    def get(self, ident: str) -> KeyRecord | None:
        row = self._conn().execute(f"SELECT {_KEY_COLS} FROM keys WHERE id = ? OR name = ?",
                                   (ident, ident)).fetchone()
        return _record(row) if row else None

    def list_keys(self) -> list[KeyRecord]:
        return [_record(r) for r in self._conn().execute(f"SELECT {_KEY_COLS} FROM keys ORDER BY created, id")]

    def set_enabled(self, ident: str, enabled: bool) -> bool:
        cur = self._conn().execute("UPDATE keys SET enabled = ? WHERE id = ? OR name = ?", (int(enabled), ident, ident))
        return cur.rowcount > 0

    def rotate(self, ident: str, digest: bytes, hint: str) -> bool:
        cur = self._conn().execute("UPDATE keys SET hash = ?, hint = ? WHERE id = ? OR name = ?",
                                   (digest, hint, ident, ident))
        return cur.rowcount > 0

    def delete(self, ident: str) -> bool:
        return self._conn().execute("DELETE FROM keys WHERE id = ? OR name = ?", (ident, ident)).rowcount > 0

    def count(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM keys").fetchone()[0])

    # ---- LedgerStore ----

    def insert(self, rows: list[LedgerRow]) -> None:
        conn = self._conn()
        marks = ",".join("?" * len(LEDGER_COLUMNS))
        conn.execute("BEGIN IMMEDIATE")
        try:
            # OR IGNORE: a replayed spool never double-counts a row (request id + time are unique).
            conn.executemany(f"INSERT OR IGNORE INTO ledger ({', '.join(LEDGER_COLUMNS)}) VALUES ({marks})", rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def usage(self, by: GroupBy, since: float) -> list[dict[str, Any]]:
        return usage_query(self._conn(), by, since, "?")

    def prune(self, before: float) -> int:
        return self._conn().execute("DELETE FROM ledger WHERE ts < ?", (before,)).rowcount


def usage_query(conn: Any, by: GroupBy, since: float, mark: str) -> list[dict[str, Any]]:
    group = {"key": "coalesce(key_name, '-')", "model": "model",
             "day": "strftime('%Y-%m-%d', ts, 'unixepoch')"}[by]
    sql = (f"SELECT {group} AS g, count(*), sum(CASE WHEN status BETWEEN 1 AND 399 THEN 1 ELSE 0 END), "
           "coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), coalesce(sum(cached_tokens), 0), "
           f"coalesce(sum(cost), 0) FROM ledger WHERE ts >= {mark} GROUP BY g ORDER BY g")
    out = []
    for g, n, ok, tin, tout, tcached, cost in conn.execute(sql, (since,)):
        out.append({by: g, "requests": n, "ok": ok, "input_tokens": tin, "output_tokens": tout,
                    "cached_tokens": tcached, "cost": round(float(cost), 6)})
    return out


class SqliteLimits:
    """Sliding-window rpm/tpm, concurrent streams and budget spend in ``limits.db`` (``LimitStore``).

    Far below a key's limits a worker admits from a lease (``teams.lease``): one transaction per
    ``lease_max`` admissions instead of one per request, exact all the same."""

    def __init__(self, data_dir: Path, lock_timeout: float, lease_max: int = 32, lease_ttl: float = 0.25) -> None:
        self.path = data_dir / "limits.db"
        self.lock_timeout = lock_timeout
        self.lease_max = lease_max
        self.lease_ttl = lease_ttl
        self.owner = os.urandom(8).hex()  # this store object: leases of other owners are "another worker's"
        self._conn_: sqlite3.Connection | None = None
        self._pid = 0
        # Settlements wait here (at most SETTLE_DELAY s) and ride along with the next transaction:
        # without leases, one write transaction per request instead of two. Waiting only keeps a
        # reservation (conservative) a few ms longer.
        self._pending: list[tuple[KeyRecord, Reservation, int, float]] = []
        self._flush: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self._leases: dict[str, Lease] = {}  # key id -> the lease this worker admits from
        self._late: dict[str, tuple[KeyRecord, Lease]] = {}  # returned leases with requests ended since
        self._undo: list[Any] = []  # what to restore in memory if the current transaction rolls back
        self.stats = {"transactions": 0, "local": 0, "leases": 0, "waits": 0}

    def _conn(self) -> sqlite3.Connection:
        if self._conn_ is None or self._pid != os.getpid():
            if self._pid and self._pid != os.getpid():  # forked: the parent's leases are the parent's
                self.owner, self._leases, self._pending, self._late = os.urandom(8).hex(), {}, [], {}
            self._conn_ = _connect(self.path, _LIMITS_SCHEMA)
            # Counters only: a power cut may lose the last moments of counts (never the ledger, in state.db).
            self._conn_.execute("PRAGMA synchronous=OFF")
            for table in ("hits", "inflight"):  # limits.db from before leases: a count column, 1 per row
                if "n" not in [r[1] for r in self._conn_.execute(f"PRAGMA table_info({table})")]:
                    self._conn_.execute(f"ALTER TABLE {table} ADD COLUMN n INTEGER NOT NULL DEFAULT 1")
            self._pid = os.getpid()
        return self._conn_

    async def close(self) -> None:
        for lease in list(self._leases.values()):
            if not lease.returned:
                with contextlib.suppress(StoreUnavailable):
                    await self._txn(_return, self, lease)
        self._leases.clear()
        if self._pending or self._late:
            await self._txn(_nothing)
        if self._conn_ is not None:
            self._conn_.close()
            self._conn_ = None

    async def _txn(self, fn: Any, *args: Any) -> Any:
        conn = self._conn()
        deadline = 0.0
        delay = 0.0002
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise StoreUnavailable(str(exc)) from exc
                now = time.monotonic()
                if not deadline:
                    deadline = now + self.lock_timeout
                elif now > deadline:
                    raise StoreUnavailable("limits.db stayed locked") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.005)
        pending, self._pending = self._pending, []
        late, self._late = self._late, {}
        lates = [(key, lease, lease.late) for key, lease in late.values()]
        self.stats["transactions"] += 1
        try:
            for item in pending:
                _settle(conn, *item)
            for key, lease, _ in lates:
                settle_returned(conn, key, lease)
            result = fn(conn, *args)
            conn.execute("COMMIT")
            self._undo.clear()
            return result
        except BaseException:
            conn.execute("ROLLBACK")
            self._pending[:0] = pending
            for key, lease, counts in lates:  # (plus whatever ended meanwhile: nothing, no await in between)
                lease.late = counts
                self._late[lease.id] = (key, lease)
            for restore in reversed(self._undo):
                restore()
            self._undo.clear()
            raise

    async def admit(self, key: KeyRecord, res: Reservation, now: float) -> Denied | None:
        lease = self._leases.get(key.id)
        if lease is not None and lease.take(key, res, now):
            self.stats["local"] += 1
            return None
        started = time.monotonic()
        while True:
            denied: Denied | None
            denied, granted, until = await self._txn(_admit_txn, self, key, res, now)
            if granted is not None:
                self._leases[key.id] = granted
                self.stats["leases"] += 1
                asyncio.get_running_loop().call_later(self.lease_ttl, self._lease_ended, granted)
            waited = time.monotonic() - started
            if denied is None or not until or waited > self.lease_ttl + 2 * GRACE:
                return denied
            # Refused while another worker holds a lease on this key: its unused slots may be what
            # is missing. Wait for it to end and be returned, then decide again.
            self.stats["waits"] += 1
            pause = min(max(until - now, 0.0) + 0.005, self.lease_ttl + 2 * GRACE - waited + 0.001)
            await asyncio.sleep(max(pause, 0.001))
            now += time.monotonic() - started - waited

    def _lease_ended(self, lease: Lease) -> None:
        if not lease.returned:
            task = asyncio.ensure_future(self._return_later(lease))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _return_later(self, lease: Lease) -> None:
        for _ in range(100):
            if lease.returned:
                return
            try:
                await self._txn(_return, self, lease)
                return
            except StoreUnavailable:
                await asyncio.sleep(SETTLE_DELAY)

    async def settle(self, key: KeyRecord, res: Reservation, tokens: int, cost: float) -> None:
        lease: Lease | None = res.lease
        if lease is not None:
            lease.settle(key, res, tokens, cost)
            if not lease.returned:
                return
            self._late[lease.id] = (key, lease)
        elif key.tpm or key.max_streams or key.budget is not None or key.model_limits:  # rpm-only: nothing
            self._pending.append((key, res, tokens, cost))
        else:
            return
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(SETTLE_DELAY, self._flush_soon)

    def _flush_soon(self) -> None:
        self._flush = None
        if self._pending or self._late:
            task = asyncio.ensure_future(self._flush_now())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _flush_now(self) -> None:
        try:
            await self._txn(_nothing)
        except StoreUnavailable:
            if self._flush is None:
                self._flush = asyncio.get_running_loop().call_later(SETTLE_DELAY, self._flush_soon)

    async def reap(self, now: float) -> int:
        """Drop expired window rows, and release what dead processes of this host held (crashed workers)."""
        n: int = await self._txn(_reap, now)
        return n


def _expire(conn: sqlite3.Connection, key_id: str, cutoff: float) -> None:
    """Drop a key's hits older than the window and take them out of its running totals (amortised O(1))."""
    n, tokens = conn.execute("SELECT total(n), total(tokens) FROM hits WHERE key_id = ? AND ts <= ?",
                             (key_id, cutoff)).fetchone()
    if n:
        conn.execute("DELETE FROM hits WHERE key_id = ? AND ts <= ?", (key_id, cutoff))
        conn.execute("UPDATE win SET n = n - ?, tokens = tokens - ? WHERE key_id = ?", (int(n), int(tokens), key_id))


def _retry(conn: sqlite3.Connection, key_id: str, now: float) -> float:
    (oldest,) = conn.execute("SELECT min(ts) FROM hits WHERE key_id = ?", (key_id,)).fetchone()
    # another worker's clock read (taken a moment later) may put the oldest hit after our ``now``
    return min(WINDOW, max(1.0, (oldest or now) + WINDOW - now))


def _nothing(conn: sqlite3.Connection) -> None:
    """A transaction that only carries the pending settlements."""


def _return(conn: sqlite3.Connection, lim: SqliteLimits, lease: Lease) -> None:
    if lease.returned:
        return
    give_back(conn, lease)
    held = lim._leases.get(lease.key_id)
    if held is lease:
        del lim._leases[lease.key_id]

    def restore() -> None:
        undo(lease)
        if held is lease:
            lim._leases.setdefault(lease.key_id, lease)
    lim._undo.append(restore)


def _admit_txn(conn: sqlite3.Connection, lim: SqliteLimits, key: KeyRecord, res: Reservation,
               now: float) -> tuple[Denied | None, Lease | None, float]:
    """Return this worker's spent lease on the key, then admit exactly (and maybe lease more)."""
    old = lim._leases.get(key.id)
    if old is not None:
        _return(conn, lim, old)
    denied, counters = _admit(conn, key, res, now)
    if denied is not None:
        return denied, None, others_live(conn, key.id, lim.owner, now)
    lease = grant(conn, key, res, now, lim.owner, lim.lease_max, lim.lease_ttl, *counters)
    if lease is None:
        _reserve(conn, key, res, now)
    return None, lease, 0.0


def _admit(conn: sqlite3.Connection, key: KeyRecord, res: Reservation,
           now: float) -> tuple[Denied | None, tuple[int, int, int, float, float]]:
    """Check; the key's own window, streams and budget counters as they would be with ``res`` (for leases)."""
    windows = key.windows(res.model)
    n_key = tokens_key = live = 0
    spent = reserved = 0.0
    for wid, rpm, tpm in windows:
        _expire(conn, wid, now - WINDOW)
        row = conn.execute("SELECT n, tokens FROM win WHERE key_id = ?", (wid,)).fetchone()
        n, tokens = row if row else (0, 0)
        if rpm and n >= rpm:
            return Denied("rpm", _retry(conn, wid, now), rpm, n), (0, 0, 0, 0.0, 0.0)
        if tpm and tokens + min(res.tokens, tpm) > tpm:
            return Denied("tpm", _retry(conn, wid, now), tpm, tokens), (0, 0, 0, 0.0, 0.0)
        if wid == key.id:
            n_key, tokens_key = n + 1, tokens + (min(res.tokens, tpm) if tpm else res.tokens)
    if key.max_streams:
        (total,) = conn.execute("SELECT total(n) FROM inflight WHERE key_id = ?", (key.id,)).fetchone()
        live = int(total)
        if live >= key.max_streams:
            return Denied("streams", 1.0, key.max_streams, live), (0, 0, 0, 0.0, 0.0)
        live += 1
    if key.budget is not None:
        row = conn.execute("SELECT spent, reserved FROM spend WHERE key_id = ? AND period = ?",
                           (key.id, res.period)).fetchone()
        spent, reserved = row if row else (0.0, 0.0)
        if spent + reserved + res.cost > key.budget or spent >= key.budget:
            return Denied("budget", 0.0, key.budget, spent + reserved), (0, 0, 0, 0.0, 0.0)
        reserved += res.cost
    return None, (n_key, tokens_key, live, spent, reserved)


def _reserve(conn: sqlite3.Connection, key: KeyRecord, res: Reservation, now: float) -> None:
    """Record one admitted request (no lease): its hits, its in-flight row, its budget reservation."""
    if key.budget is not None:
        conn.execute("INSERT INTO spend VALUES (?, ?, 0, ?) ON CONFLICT (key_id, period) "
                     "DO UPDATE SET reserved = reserved + excluded.reserved", (key.id, res.period, res.cost))
    for wid, _, tpm in key.windows(res.model):
        tokens = min(res.tokens, tpm) if tpm else res.tokens
        conn.execute("INSERT INTO hits (key_id, ts, req, tokens) VALUES (?, ?, ?, ?)", (wid, now, res.req, tokens))
        conn.execute("INSERT INTO win VALUES (?, 1, ?) ON CONFLICT (key_id) DO UPDATE SET n = n + 1, "
                     "tokens = tokens + excluded.tokens", (wid, tokens))
    if key.max_streams or key.budget is not None:
        conn.execute("INSERT OR REPLACE INTO inflight (key_id, req, pid, period, cost) VALUES (?, ?, ?, ?, ?)",
                     (key.id, res.req, os.getpid(), res.period, res.cost))
    res.at = now


def _settle(conn: sqlite3.Connection, key: KeyRecord, res: Reservation, tokens: int, cost: float) -> None:
    for wid, _, tpm in key.windows(res.model):
        if not tpm:
            continue
        where = (wid, res.at, res.req)
        row = conn.execute("SELECT tokens FROM hits WHERE key_id = ? AND ts = ? AND req = ?", where).fetchone()
        if row is not None:  # still in the window: the running total moves by the difference
            conn.execute("UPDATE hits SET tokens = ? WHERE key_id = ? AND ts = ? AND req = ?", (tokens, *where))
            conn.execute("UPDATE win SET tokens = tokens + ? WHERE key_id = ?", (tokens - row[0], wid))
    gone = 0
    if key.max_streams or key.budget is not None:
        gone = conn.execute("DELETE FROM inflight WHERE key_id = ? AND req = ?", (key.id, res.req)).rowcount
    if key.budget is not None:
        held = res.cost if gone else 0.0  # reaped already: its reservation was released then
        conn.execute("INSERT INTO spend VALUES (?, ?, ?, 0) ON CONFLICT (key_id, period) DO UPDATE SET "
                     "spent = spent + excluded.spent, reserved = max(reserved - ?, 0)",
                     (key.id, res.period, cost, held))


def _reap(conn: sqlite3.Connection, now: float) -> int:
    for (key_id,) in conn.execute("SELECT DISTINCT key_id FROM hits WHERE ts <= ?", (now - WINDOW,)).fetchall():
        _expire(conn, key_id, now - WINDOW)
    dead = []
    for (pid,) in conn.execute("SELECT DISTINCT pid FROM inflight").fetchall():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            dead.append(pid)
        except PermissionError:
            pass
    n = 0
    for pid in dead:
        for key_id, period, cost in conn.execute("SELECT key_id, period, cost FROM inflight WHERE pid = ?",
                                                 (pid,)).fetchall():
            conn.execute("UPDATE spend SET reserved = max(reserved - ?, 0) WHERE key_id = ? AND period = ?",
                         (cost, key_id, period))
        n += conn.execute("DELETE FROM inflight WHERE pid = ?", (pid,)).rowcount
        conn.execute("DELETE FROM leases WHERE pid = ?", (pid,))  # nobody waits for a dead worker's lease
    conn.execute("DELETE FROM leases WHERE expires < ?", (now - WINDOW,))
    return n
