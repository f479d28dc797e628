"""Team governance without sockets: keys and their hash, the SQLite limit store, the governor, the ledger."""

from __future__ import annotations

import asyncio
import calendar
import multiprocessing
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from sluicegate.config.model import Settings
from sluicegate.inference.sse import Usage
from sluicegate.teams.governor import Governor, Refusal, Ticket
from sluicegate.teams.keys import KeyRecord, key_hash, load_pepper, looks_like_key, new_key, period_end
from sluicegate.teams.ledger import LedgerWriter
from sluicegate.teams.manage import KeyAdmin, ManageError, parse_since
from sluicegate.teams.sqlite import SqliteLimits, SqliteState
from sluicegate.teams.store import Reservation


def settings(tmp: Path, **inference: Any) -> Settings:
    inf = {"path_prefix": "/llm", "providers": [{"name": "m", "kind": "mock", "base_url": "http://127.0.0.1:9/v1"}],
           "models": [{"name": "fast", "targets": [{"provider": "m", "model": "mock-1"}]},
                      {"name": "big", "targets": [{"provider": "m", "model": "mock-2"}]}],
           "state": {"data_dir": str(tmp / "data")}, **inference}
    return Settings.model_validate({"inference": inf})


def auth(gov: Governor, headers: dict[bytes, bytes], ip: str) -> Any:
    return asyncio.run(gov.authenticate(headers, ip))


def test_key_format_and_hash(tmp_path: Path) -> None:
    key = new_key()
    assert key.startswith("sk-sg-") and looks_like_key(key.encode())
    assert not looks_like_key(b"sk-sg-short") and not looks_like_key(b"sk-proj-" + b"x" * 43)
    pepper = load_pepper("NOPE_UNSET", tmp_path, {})
    assert (tmp_path / "key-pepper").stat().st_mode & 0o777 == 0o600
    assert load_pepper("NOPE_UNSET", tmp_path, {}) == pepper  # stable across calls/processes
    assert load_pepper("P", tmp_path, {"P": "0123456789abcdef!"}) == b"0123456789abcdef!"
    with pytest.raises(ValueError):
        load_pepper("P", tmp_path, {"P": "short"})
    d1, d2 = key_hash(pepper, key.encode()), key_hash(b"other-pepper-0123", key.encode())
    assert len(d1) == 32 and d1 != d2 and key.encode() not in d1


def test_key_policy_checks() -> None:
    rec = KeyRecord(id="k", name="n", hint="h", models=("fast",), cidrs=("10.0.0.0/8", "::1/128"))
    assert rec.allows_model("fast") and not rec.allows_model("big")
    assert rec.allows_ip("10.1.2.3") and rec.allows_ip("::1")
    assert not rec.allows_ip("192.168.1.1") and not rec.allows_ip("") and not rec.allows_ip("garbage")
    assert KeyRecord(id="k", name="n", hint="h").allows_ip("1.2.3.4")
    # budget periods end at UTC midnight / the first of the next month
    t = float(calendar.timegm((2026, 12, 3, 1, 0, 0, 0, 0, 0)))
    assert time.gmtime(period_end("day", t))[:6] == (2026, 12, 4, 0, 0, 0)
    assert time.gmtime(period_end("month", t))[:6] == (2027, 1, 1, 0, 0, 0)


def _res(req: str, key: str = "k1", tokens: int = 10, cost: float = 0.0, period: str = "2026-12") -> Reservation:
    return Reservation(req, key, tokens, cost, period)


def test_sqlite_rpm_is_exact_and_says_when(tmp_path: Path) -> None:
    lim = SqliteLimits(tmp_path, 1.0)
    key = KeyRecord(id="k1", name="a", hint="h", rpm=5)
    now = 1000.0

    async def run() -> list[Any]:
        return [await lim.admit(key, _res(f"r{i}"), now + i * 0.01) for i in range(8)]

    out = asyncio.run(run())
    assert out[:5] == [None] * 5
    assert [d.reason for d in out[5:]] == ["rpm"] * 3
    assert 59 <= out[5].retry_after <= 60
    # a minute after the first admission the window has room again
    assert asyncio.run(lim.admit(key, _res("late"), now + 60.001)) is None


def test_sqlite_tpm_reserves_then_settles(tmp_path: Path) -> None:
    lim = SqliteLimits(tmp_path, 1.0)
    key = KeyRecord(id="k1", name="a", hint="h", tpm=1000)

    async def run() -> None:
        a = _res("a", tokens=600)
        assert await lim.admit(key, a, 1.0) is None
        denied = await lim.admit(key, _res("b", tokens=600), 2.0)
        assert denied is not None and denied.reason == "tpm"
        await lim.settle(key, a, 100, 0.0)  # it used far less than it reserved
        assert await lim.admit(key, _res("b", tokens=600), 3.0) is None
        assert (await lim.admit(key, _res("c", tokens=600), 4.0)) is not None

    asyncio.run(run())


def test_sqlite_streams_and_budget(tmp_path: Path) -> None:
    lim = SqliteLimits(tmp_path, 1.0)
    key = KeyRecord(id="k1", name="a", hint="h", max_streams=2, budget=1.0)

    async def run() -> None:
        a, b = _res("a", cost=0.4), _res("b", cost=0.4)
        assert await lim.admit(key, a, 1.0) is None
        assert await lim.admit(key, b, 1.0) is None
        d = await lim.admit(key, _res("c", cost=0.1), 1.0)
        assert d is not None and d.reason == "streams"
        await lim.settle(key, a, 10, 0.7)  # actual cost above the reservation
        # spent 0.7 + reserved 0.4 (b) + 0.1 > 1.0: refused on budget before any upstream call
        d = await lim.admit(key, _res("c", cost=0.1), 1.0)
        assert d is not None and d.reason == "budget"
        await lim.settle(key, b, 10, 0.2)
        assert await lim.admit(key, _res("c", cost=0.05), 1.0) is None
        row = sqlite3.connect(tmp_path / "limits.db").execute("SELECT spent, reserved FROM spend").fetchone()
        assert row == pytest.approx((0.9, 0.05))

    asyncio.run(run())


def _admit_in_child(path: str, n: int, q: Any) -> None:
    lim = SqliteLimits(Path(path), 5.0)
    key = KeyRecord(id="team-both", name="s", hint="h", rpm=60)

    async def run() -> int:
        now = time.time()
        ok = 0
        for i in range(n):
            ok += await lim.admit(key, _res(f"{os.getpid()}-{i}", key="team-both"), now) is None
        return ok

    q.put(asyncio.run(run()))


def test_sqlite_limit_is_shared_by_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_admit_in_child, args=(str(tmp_path), 50, q)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert sum(q.get(timeout=5) for _ in procs) == 60  # 4 x 50 attempts on one 60 RPM key


def test_reap_releases_what_dead_workers_held(tmp_path: Path) -> None:
    lim = SqliteLimits(tmp_path, 1.0)
    key = KeyRecord(id="k1", name="a", hint="h", max_streams=1, budget=10.0)
    asyncio.run(lim.admit(key, _res("a", cost=1.0), 1.0))
    db = sqlite3.connect(tmp_path / "limits.db")
    proc = multiprocessing.get_context("fork").Process(target=time.sleep, args=(0,))
    proc.start()
    proc.join()
    db.execute("UPDATE inflight SET pid = ?", (proc.pid,))  # as if a worker died mid-stream
    db.commit()
    assert asyncio.run(lim.admit(key, _res("b"), 2.0)) is not None
    assert asyncio.run(lim.reap(3.0)) == 1
    assert asyncio.run(lim.admit(key, _res("b"), 4.0)) is None
    assert db.execute("SELECT reserved FROM spend").fetchone()[0] == pytest.approx(0.0)


def test_governor_modes_and_refusals(tmp_path: Path) -> None:
    s = settings(tmp_path, prices={"fast": {"input": 1.0, "output": 2.0, "cached_input": 0.5}})
    gov = Governor(s.inference, {})
    assert auth(gov, {}, "127.0.0.1") is None  # no state yet: single-user mode, nothing created
    assert not (tmp_path / "data").exists()
    admin = KeyAdmin(s.inference, {})
    secret, _rec = admin.create("team-a", models=["fast"], rpm=2, cidrs=["127.0.0.0/8"])
    with pytest.raises(ManageError):
        admin.create("team-a")
    with pytest.raises(ManageError):
        admin.create("b", models=["nope"])
    gov._active_checked = -1e9
    r = auth(gov, {}, "127.0.0.1")
    assert isinstance(r, Refusal) and r.status == 401  # keys exist: required now
    r = auth(gov, {b"authorization": b"Bearer sk-sg-" + b"x" * 43}, "127.0.0.1")
    assert isinstance(r, Refusal) and r.status == 401
    r = auth(gov, {b"x-api-key": secret.encode()}, "10.0.0.1")
    assert isinstance(r, Refusal) and r.status == 403
    key = auth(gov, {b"authorization": b"Bearer " + secret.encode()}, "127.0.0.1")
    assert isinstance(key, KeyRecord) and key.name == "team-a"

    async def run() -> None:
        await gov.startup()
        try:
            denied = await gov.admit(key, "big", b"{}", "r0", False)
            assert isinstance(denied, Refusal) and denied.status == 403
            t1 = await gov.admit(key, "fast", b'{"max_tokens": 50}', "r1", False)
            t2 = await gov.admit(key, "fast", b"{}", "r2", False)
            t3 = await gov.admit(key, "fast", b"{}", "r3", False)
            assert isinstance(t1, Ticket) and isinstance(t2, Ticket)
            assert isinstance(t3, Refusal) and t3.status == 429 and t3.code == "rate_limit_exceeded"
            assert t3.headers()[0][0] == b"retry-after" and 1 <= int(t3.headers()[0][1]) <= 60
            t1.observe(Usage(input_tokens=1000, output_tokens=2000, cache_read_tokens=400), "m", 200, "ok")
            await gov.settle(t1, 0.012)
            await gov.settle(t2)  # never answered: estimated, no tokens charged
        finally:
            await gov.shutdown()

    asyncio.run(run())
    rows = sqlite3.connect(tmp_path / "data" / "state.db").execute(
        "SELECT request_id, key_name, model, status, input_tokens, output_tokens, cached_tokens, estimated, cost,"
        " ttfb_ms FROM ledger ORDER BY request_id").fetchall()
    # cost: (600 uncached x 1 + 400 cached x 0.5 + 2000 x 2) / 1e6
    assert rows[0] == ("r1", "team-a", "fast", 200, 1000, 2000, 400, 0, pytest.approx(0.0048), 12.0)
    assert rows[1][:8] == ("r2", "team-a", "fast", 0, 0, 0, 0, 1)
    assert admin.usage("key", "1d") == [{"key": "team-a", "requests": 2, "ok": 1, "input_tokens": 1000,
                                        "output_tokens": 2000, "cached_tokens": 400, "cost": 0.0048}]
    admin.set_enabled("team-a", False)
    gov._cache.clear()
    assert isinstance(auth(gov, {b"x-api-key": secret.encode()}, "127.0.0.1"), Refusal)
    admin.set_enabled("team-a", True)
    new, _ = admin.rotate("team-a")
    gov._cache.clear()
    assert isinstance(auth(gov, {b"x-api-key": secret.encode()}, "127.0.0.1"), Refusal)
    assert isinstance(auth(gov, {b"x-api-key": new.encode()}, "127.0.0.1"), KeyRecord)
    admin.delete("team-a")
    with pytest.raises(ManageError):
        admin.get("team-a")


def test_require_keys_false_keeps_keyless_requests_open(tmp_path: Path) -> None:
    s = settings(tmp_path, require_keys=False)
    KeyAdmin(s.inference, {}).create("a")
    gov = Governor(s.inference, {})
    assert auth(gov, {}, "127.0.0.1") is None
    assert auth(gov, {b"authorization": b"Bearer sk-dummy"}, "127.0.0.1") is None
    assert isinstance(auth(gov, {b"x-api-key": b"sk-sg-" + b"y" * 43}, "127.0.0.1"), Refusal)


class _FlakyStore:
    def __init__(self) -> None:
        self.down = False
        self.rows: list[tuple[Any, ...]] = []

    def insert(self, rows: list[tuple[Any, ...]]) -> None:
        if self.down:
            raise OSError("connection refused")
        self.rows.extend(rows)

    def usage(self, by: Any, since: float) -> list[dict[str, Any]]:
        return []

    def prune(self, before: float) -> int:
        return 0


def test_ledger_spools_while_store_is_down_and_loses_nothing(tmp_path: Path) -> None:
    store = _FlakyStore()
    w = LedgerWriter(store, tmp_path, queue_max=100, batch_max=7, interval=0.01, spool_max_bytes=1 << 20)
    store.down = True
    for i in range(30):
        assert w.put((float(i), f"r{i}"))
    w.flush()
    assert store.rows == [] and w.store_down and list(tmp_path.glob("ledger-spool-*.jsonl"))
    store.down = False
    for i in range(30, 40):
        w.put((float(i), f"r{i}"))
    w.flush()
    assert [r[1] for r in store.rows] == [f"r{i}" for i in range(40)]  # spool first, in order, then new rows
    assert not list(tmp_path.glob("ledger-spool-*.jsonl")) and not w.store_down


def test_ledger_queue_is_bounded_and_counts_drops(tmp_path: Path) -> None:
    w = LedgerWriter(_FlakyStore(), tmp_path, queue_max=16, batch_max=100, interval=60, spool_max_bytes=1 << 20)
    accepted = sum(w.put((float(i), "r")) for i in range(40))
    assert accepted == 16 and w.dropped == 24


def test_sqlite_ledger_replay_is_idempotent(tmp_path: Path) -> None:
    st = SqliteState(tmp_path)
    row = (1.0, "r1", None, None, "fast", "m", "mock-1", 1, 200, "ok", 1, 2, 0, 0, 0.0, 1.0, 2.0)
    st.insert([row])
    st.insert([row])
    assert st.usage("model", 0.0)[0]["requests"] == 1


def test_parse_since() -> None:
    assert parse_since("7d", 1_000_000.0) == 1_000_000.0 - 7 * 86400
    with pytest.raises(ManageError):
        parse_since("yesterday")


def test_a_shared_database_needs_a_shared_pepper(tmp_path: Path) -> None:
    s = settings(tmp_path, state={"data_dir": str(tmp_path), "database_url": "postgresql://u@127.0.0.1:1/db"})
    with pytest.raises(ValueError, match="SLUICEGATE_KEY_PEPPER"):
        Governor(s.inference, {})
    with pytest.raises(ValueError, match="SLUICEGATE_KEY_PEPPER"):
        KeyAdmin(s.inference, {})
    Governor(s.inference, {"SLUICEGATE_KEY_PEPPER": "p" * 32})  # nothing connects before startup


def test_model_limits_from_the_command_line(tmp_path: Path) -> None:
    from sluicegate.teams.manage import parse_model_limit

    assert parse_model_limit("big:rpm=10,tpm=2000") == ("big", {"rpm": 10, "tpm": 2000})
    for bad in ("big", "big:", "big:rpm=x", "big:burst=3"):
        with pytest.raises(ManageError):
            parse_model_limit(bad)
    admin = KeyAdmin(settings(tmp_path).inference, {})
    _, rec = admin.create("m", rpm=100, model_limits={"big": {"rpm": 5}})
    assert admin.get("m").model_limits == (("big", 5, None),) and rec.limited
    assert admin.get("m").public()["model_limits"] == {"big": {"rpm": 5, "tpm": None}}
    assert [w[1:] for w in rec.windows("big")] == [(100, 0), (5, 0)] and len(rec.windows("fast")) == 1
    with pytest.raises(ManageError):
        admin.create("n", model_limits={"nope": {"rpm": 1}})


def test_ledger_retention_prunes_old_rows(tmp_path: Path) -> None:
    st = SqliteState(tmp_path)
    old = (time.time() - 10 * 86400, "old", None, None, "fast", "m", "mock-1", 1, 200, "ok", 1, 2, 0, 0, 0.0, 1.0, 2.0)
    new = (time.time(), "new", *old[2:])
    st.insert([old, new])
    w = LedgerWriter(st, tmp_path, queue_max=16, batch_max=16, interval=60, spool_max_bytes=1 << 20, retention_days=7)
    w._prune()
    assert [r["requests"] for r in st.usage("model", 0.0)] == [1]


def test_require_keys_satisfies_the_open_gateway_check() -> None:
    inf: dict[str, Any] = {
        "path_prefix": "/llm", "models": [{"name": "x", "targets": [{"provider": "o", "model": "x"}]}],
        "providers": [{"name": "o", "kind": "openai", "api_key_env": "OPENAI_KEY"}]}
    server = {"host": "0.0.0.0"}
    with pytest.raises(ValueError, match="open to anyone"):
        Settings.model_validate({"server": server, "inference": inf})
    keyed = Settings.model_validate({"server": server, "inference": {**inf, "require_keys": True}})
    assert keyed.inference.require_keys
