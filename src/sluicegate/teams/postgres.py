"""Keys and the usage ledger in PostgreSQL (``[inference.state] database_url``), shared by every instance.

``KeyStore`` + ``LedgerStore`` with the same blocking interface as the SQLite store, over asyncpg run
on a private event loop in one daemon thread (so the ledger writer thread, the CLI and the admin API
call it alike; the serving loop only reaches it through a worker thread on a key-cache miss). Each
call is bounded by ``timeout``; any failure raises, and the ledger writer then spools to disk and
replays later (inserts are idempotent on request id + time). Must not know HTTP, limits or prices.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from sluicegate.teams.keys import KeyRecord
from sluicegate.teams.store import LEDGER_COLUMNS, GroupBy, LedgerRow

T = TypeVar("T")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sg_keys (
  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, hash BYTEA NOT NULL UNIQUE, hint TEXT NOT NULL,
  models TEXT NOT NULL, cidrs TEXT NOT NULL, rpm BIGINT, tpm BIGINT, max_streams BIGINT,
  budget DOUBLE PRECISION, period TEXT NOT NULL, enabled BOOLEAN NOT NULL, created DOUBLE PRECISION NOT NULL,
  model_limits TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS sg_ledger (
  ts DOUBLE PRECISION NOT NULL, request_id TEXT NOT NULL, key_id TEXT, key_name TEXT, model TEXT,
  provider TEXT, upstream_model TEXT, attempts INTEGER, status INTEGER, outcome TEXT, input_tokens BIGINT,
  output_tokens BIGINT, cached_tokens BIGINT, estimated INTEGER, cost DOUBLE PRECISION,
  ttfb_ms DOUBLE PRECISION, duration_ms DOUBLE PRECISION, UNIQUE (request_id, ts)
);
CREATE INDEX IF NOT EXISTS sg_ledger_ts ON sg_ledger (ts);
"""
_KEY_COLS = "id, name, hint, models, cidrs, rpm, tpm, max_streams, budget, period, enabled, created, model_limits"


def _record(r: Any) -> KeyRecord:
    return KeyRecord(id=r[0], name=r[1], hint=r[2], models=tuple(json.loads(r[3])), cidrs=tuple(json.loads(r[4])),
                     rpm=r[5], tpm=r[6], max_streams=r[7], budget=r[8], period=r[9], enabled=bool(r[10]),
                     created=r[11], model_limits=tuple((m, a, b) for m, a, b in json.loads(r[12])))


class PostgresState:
    def __init__(self, url: str, timeout: float = 3.0) -> None:
        self.url = url
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pool: Any = None
        self._lock = threading.Lock()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=loop.run_forever, name="sluicegate-pg", daemon=True)
                self._thread.start()
                self._loop = loop
        return asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, self.timeout), self._loop).result()

    async def _conn(self) -> Any:
        if self._pool is None:
            import asyncpg

            pool = await asyncpg.create_pool(self.url, min_size=0, max_size=4, command_timeout=self.timeout)
            async with pool.acquire() as c:
                await c.execute("SELECT pg_advisory_lock(7318)")  # one schema creator at a time
                try:
                    await c.execute(_SCHEMA)
                finally:
                    await c.execute("SELECT pg_advisory_unlock(7318)")
            self._pool = pool
        return self._pool

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        pool = await self._conn()
        return list(await pool.fetch(sql, *args))

    async def _exec(self, sql: str, *args: Any) -> str:
        pool = await self._conn()
        return str(await pool.execute(sql, *args))

    def close(self) -> None:
        if self._loop is None:
            return
        if self._pool is not None:
            try:
                self._run(self._pool.close())
            except Exception:
                self._pool.terminate()
            self._pool = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop.close()
        self._loop = None

    # ---- KeyStore ----

    def create(self, record: KeyRecord, digest: bytes) -> None:
        import asyncpg

        r = record
        try:
            self._run(self._exec(
                f"INSERT INTO sg_keys ({_KEY_COLS}, hash) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)",
                r.id, r.name, r.hint, json.dumps(list(r.models)), json.dumps(list(r.cidrs)), r.rpm, r.tpm,
                r.max_streams, r.budget, r.period, r.enabled, r.created,
                json.dumps([list(m) for m in r.model_limits]), digest))
        except asyncpg.UniqueViolationError:
            raise ValueError(f"a key named {r.name!r} already exists") from None

    def by_hash(self, digest: bytes) -> KeyRecord | None:
        rows = self._run(self._fetch(f"SELECT {_KEY_COLS} FROM sg_keys WHERE hash = $1", digest))
        return _record(rows[0]) if rows else None

    def get(self, ident: str) -> KeyRecord | None:
        rows = self._run(self._fetch(f"SELECT {_KEY_COLS} FROM sg_keys WHERE id = $1 OR name = $1", ident))
        return _record(rows[0]) if rows else None

    def list_keys(self) -> list[KeyRecord]:
        return [_record(r) for r in self._run(self._fetch(f"SELECT {_KEY_COLS} FROM sg_keys ORDER BY created, id"))]

    def set_enabled(self, ident: str, enabled: bool) -> bool:
        tag = self._run(self._exec("UPDATE sg_keys SET enabled = $1 WHERE id = $2 OR name = $2", enabled, ident))
        return not tag.endswith(" 0")

    def rotate(self, ident: str, digest: bytes, hint: str) -> bool:
        tag = self._run(self._exec("UPDATE sg_keys SET hash = $1, hint = $2 WHERE id = $3 OR name = $3",
                                   digest, hint, ident))
        return not tag.endswith(" 0")

    def delete(self, ident: str) -> bool:
        return not self._run(self._exec("DELETE FROM sg_keys WHERE id = $1 OR name = $1", ident)).endswith(" 0")

    def count(self) -> int:
        return int(self._run(self._fetch("SELECT count(*) FROM sg_keys"))[0][0])

    # ---- LedgerStore ----

    def insert(self, rows: list[LedgerRow]) -> None:
        async def go() -> None:
            pool = await self._conn()
            marks = ", ".join(f"${i + 1}" for i in range(len(LEDGER_COLUMNS)))
            async with pool.acquire() as c, c.transaction():
                await c.executemany(f"INSERT INTO sg_ledger ({', '.join(LEDGER_COLUMNS)}) VALUES ({marks}) "
                                    "ON CONFLICT DO NOTHING", [tuple(r) for r in rows])

        self._run(go())

    def prune(self, before: float) -> int:
        tag = self._run(self._exec("DELETE FROM sg_ledger WHERE ts < $1", before))
        return int(tag.rsplit(" ", 1)[-1]) if tag.rsplit(" ", 1)[-1].isdigit() else 0

    def usage(self, by: GroupBy, since: float) -> list[dict[str, Any]]:
        group = {"key": "coalesce(key_name, '-')", "model": "model",
                 "day": "to_char(to_timestamp(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"}[by]
        sql = (f"SELECT {group} AS g, count(*), sum(CASE WHEN status BETWEEN 1 AND 399 THEN 1 ELSE 0 END), "
               "coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), coalesce(sum(cached_tokens), 0), "
               "coalesce(sum(cost), 0) FROM sg_ledger WHERE ts >= $1 GROUP BY g ORDER BY g")
        return [{by: r[0], "requests": int(r[1]), "ok": int(r[2]), "input_tokens": int(r[3]),
                 "output_tokens": int(r[4]), "cached_tokens": int(r[5]), "cost": round(float(r[6]), 6)}
                for r in self._run(self._fetch(sql, since))]
