"""Admission leases of the embedded limit store: local admissions, exact at the limit, accounts that add up."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import multiprocessing
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from sluicegate.teams.keys import KeyHasher, KeyRecord
from sluicegate.teams.sqlite import SqliteLimits
from sluicegate.teams.store import Reservation


def _res(req: str, key: str = "k1", tokens: int = 10, cost: float = 0.0, period: str = "2026-12") -> Reservation:
    return Reservation(req, key, tokens, cost, period)


@pytest.mark.parametrize("pepper", [b"0123456789abcdef", b"p" * 64, b"q" * 65, os.urandom(200)])
def test_key_hasher_is_hmac_sha256(pepper: bytes) -> None:
    hasher = KeyHasher(pepper)
    for key in (b"sk-sg-" + b"a" * 43, b"", os.urandom(100)):
        assert hasher(key) == hmac.new(pepper, key, hashlib.sha256).digest()


def test_far_below_the_limit_admissions_come_from_leases_and_stay_exact(tmp_path: Path) -> None:
    lim = SqliteLimits(tmp_path, 1.0, lease_max=32, lease_ttl=5.0)
    key = KeyRecord(id="k1", name="a", hint="h", rpm=1000)

    async def run() -> list[Any]:
        out = [await lim.admit(key, _res(f"r{i}"), 100.0) for i in range(1010)]
        await lim.close()
        return out

    out = asyncio.run(run())
    assert out[:1000] == [None] * 1000
    assert [d.reason for d in out[1000:]] == ["rpm"] * 10  # exactly the limit, never one more
    assert lim.stats["local"] > 800  # most admissions needed no transaction
    assert lim.stats["transactions"] < 200
    db = sqlite3.connect(tmp_path / "limits.db")
    assert db.execute("SELECT n FROM win WHERE key_id = 'k1'").fetchone()[0] == 1000
    assert db.execute("SELECT sum(n) FROM hits WHERE key_id = 'k1'").fetchone()[0] == 1000
    assert db.execute("SELECT count(*) FROM leases").fetchone()[0] == 0
    # leased admissions are stamped no earlier than they happened: the window keeps them a full minute
    assert db.execute("SELECT min(ts) FROM hits").fetchone()[0] >= 100.0


def test_an_idle_lease_holder_never_causes_a_wrong_refusal(tmp_path: Path) -> None:
    """Worker A leases part of the window and goes idle; worker B still gets everything A did not use."""
    a = SqliteLimits(tmp_path, 1.0, lease_max=32, lease_ttl=0.2)
    b = SqliteLimits(tmp_path, 1.0, lease_max=32, lease_ttl=0.2)
    key = KeyRecord(id="k1", name="a", hint="h", rpm=100)

    async def run() -> tuple[int, float]:
        assert await a.admit(key, _res("a0"), time.time()) is None
        assert a.stats["leases"] == 1  # A holds a lease of 12 (1/8 of the 99 left)
        ok = 0
        t0 = time.monotonic()
        for i in range(150):
            ok += await b.admit(key, _res(f"b{i}"), time.time()) is None
            await asyncio.sleep(0)  # A is another worker: its loop runs (here: its lease-end timer)
        waited = time.monotonic() - t0
        await a.close()
        await b.close()
        return ok, waited

    ok, waited = asyncio.run(run())
    assert ok == 99  # A's one + B's 99 = the limit: A's unused leased slots were returned, not lost
    assert b.stats["waits"] >= 1 and waited < 5


def test_lease_accounts_add_up_for_tokens_budget_and_streams(tmp_path: Path) -> None:
    lim = SqliteLimits(tmp_path, 1.0, lease_max=32, lease_ttl=5.0)
    key = KeyRecord(id="k1", name="a", hint="h", rpm=10_000, tpm=1_000_000, max_streams=1000, budget=100.0)

    async def run() -> None:
        held = []
        for i in range(50):
            r = _res(f"r{i}", tokens=100, cost=0.01)
            assert await lim.admit(key, r, 100.0) is None
            held.append(r)
        assert lim.stats["local"] > 0
        for r in held[:20]:  # settled while their lease is held: bookkeeping in memory
            await lim.settle(key, r, 40, 0.02)
        # a request past the lease's end returns it (the 30 still in flight keep their slots)
        assert await lim.admit(key, _res("late", tokens=100, cost=0.01), 106.0) is None
        db = sqlite3.connect(tmp_path / "limits.db")
        live = db.execute("SELECT total(n) FROM inflight WHERE key_id = 'k1'").fetchone()[0]
        assert live >= 31  # the 30 lease requests still in flight + "late" (+ a new lease's slots)
        for r in held[20:]:  # settled after their lease was returned: the returned rows move
            await lim.settle(key, r, 40, 0.02)
        await lim.close()

    asyncio.run(run())
    db = sqlite3.connect(tmp_path / "limits.db")
    spent, reserved = db.execute("SELECT spent, reserved FROM spend").fetchone()
    assert spent == pytest.approx(50 * 0.02)
    assert reserved == pytest.approx(0.01)  # only "late" still holds its reservation
    n, tokens = db.execute("SELECT n, tokens FROM win WHERE key_id = 'k1'").fetchone()
    assert (n, tokens) == (51, 50 * 40 + 100)
    assert db.execute("SELECT total(n) FROM inflight").fetchone()[0] == 1  # "late"


def _admit_in_child(path: str, n: int, q: Any) -> None:
    lim = SqliteLimits(Path(path), 5.0, lease_max=32, lease_ttl=0.25)
    key = KeyRecord(id="k-lease", name="s", hint="h", rpm=400)

    async def run() -> tuple[int, int]:
        ok = 0
        for i in range(n):
            ok += await lim.admit(key, _res(f"{os.getpid()}-{i}", key="k-lease"), time.time()) is None
        await lim.close()
        return ok, lim.stats["local"]

    q.put(asyncio.run(run()))


def test_leases_across_processes_admit_exactly_the_limit(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_admit_in_child, args=(str(tmp_path), 150, q)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    results = [q.get(timeout=5) for _ in procs]
    assert sum(ok for ok, _ in results) == 400  # 4 x 150 attempts on one 400 RPM key
    assert sum(local for _, local in results) > 100  # and most of them came from leases


def test_lease_off_means_a_transaction_per_admission(tmp_path: Path) -> None:
    lim = SqliteLimits(tmp_path, 1.0, lease_max=0)
    key = KeyRecord(id="k1", name="a", hint="h", rpm=1000)

    async def run() -> None:
        for i in range(20):
            assert await lim.admit(key, _res(f"r{i}"), 100.0) is None

    asyncio.run(run())
    assert lim.stats == {"transactions": 20, "local": 0, "leases": 0, "waits": 0}


def test_limits_db_from_before_leases_is_upgraded(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "limits.db")
    db.executescript("""
        CREATE TABLE hits (key_id TEXT NOT NULL, ts REAL NOT NULL, req TEXT NOT NULL, tokens INTEGER NOT NULL,
                           PRIMARY KEY (key_id, ts, req)) WITHOUT ROWID;
        CREATE TABLE inflight (key_id TEXT NOT NULL, req TEXT NOT NULL, pid INTEGER NOT NULL, period TEXT NOT NULL,
                               cost REAL NOT NULL, PRIMARY KEY (key_id, req)) WITHOUT ROWID;
        INSERT INTO hits VALUES ('k1', 99.0, 'old', 5);
    """)
    db.close()
    lim = SqliteLimits(tmp_path, 1.0)
    key = KeyRecord(id="k1", name="a", hint="h", rpm=3, max_streams=5)

    async def run() -> None:
        for i in range(3):
            assert await lim.admit(key, _res(f"r{i}"), 100.0) is None
        await lim.close()

    asyncio.run(run())
    db = sqlite3.connect(tmp_path / "limits.db")
    assert db.execute("SELECT n FROM hits WHERE req = 'old'").fetchone()[0] == 1
    assert db.execute("SELECT total(n) FROM inflight").fetchone()[0] == 3


def test_key_cache_revocation_bound(tmp_path: Path) -> None:
    """A looked-up key is served from the worker's cache (no store read, HMAC with precomputed pads) for
    key_cache_ttl; a disable or rotation is in force everywhere once that much time has passed."""
    from sluicegate.config.model import Settings
    from sluicegate.teams.governor import Governor, Refusal
    from sluicegate.teams.manage import KeyAdmin

    s = Settings.model_validate({"inference": {
        "path_prefix": "/llm", "providers": [{"name": "m", "kind": "mock", "base_url": "http://127.0.0.1:9/v1"}],
        "models": [{"name": "fast", "targets": [{"provider": "m", "model": "mock-1"}]}],
        "state": {"data_dir": str(tmp_path / "data")}, "teams": {"key_cache_ttl": 0.5}}})
    admin = KeyAdmin(s.inference, {})
    secret, _ = admin.create("a")
    other, _ = admin.create("b")
    gov = Governor(s.inference, {})
    lookups = 0
    by_hash = gov.keys.by_hash

    def counting(digest: bytes) -> Any:
        nonlocal lookups
        lookups += 1
        return by_hash(digest)

    gov.keys.by_hash = counting  # type: ignore[method-assign]

    def auth(key: str) -> Any:
        return asyncio.run(gov.authenticate({b"authorization": b"Bearer " + key.encode()}, "127.0.0.1"))

    assert isinstance(auth(secret), KeyRecord)
    for _ in range(100):
        assert isinstance(auth(secret), KeyRecord)
    assert lookups == 1  # one store read, then the cache
    admin.set_enabled("a", False)
    admin.rotate("b")
    t0 = time.monotonic()
    while isinstance(auth(secret), KeyRecord) or isinstance(auth(other), KeyRecord):
        assert time.monotonic() - t0 < 0.5 + 0.2  # the bound: key_cache_ttl
        time.sleep(0.02)
    assert isinstance(auth(secret), Refusal) and auth(secret).status == 401
    assert isinstance(auth(other), Refusal)
