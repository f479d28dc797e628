"""The same limit scenarios against both limit stores: embedded SQLite and a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sluicegate.teams.keys import KeyRecord
from sluicegate.teams.redis_limits import RedisLimits
from sluicegate.teams.sqlite import SqliteLimits
from sluicegate.teams.store import Reservation
from tests.integration.teams.stateservers import RedisServer


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.cleanup()


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        return SqliteLimits(tmp_path, 1.0)
    return RedisLimits(request.getfixturevalue("redis_url"), 1.0)


_n = 0


def res(tokens: int = 10, cost: float = 0.0, model: str = "fast") -> Reservation:
    global _n
    _n += 1
    return Reservation(f"req-{_n}", "", tokens, cost, "2026-12", model=model)


def key(**limits: Any) -> KeyRecord:
    global _n
    _n += 1
    return KeyRecord(id=f"key_{_n}", name=f"k{_n}", hint="h", **limits)


def run(store: Any, coro: Any) -> Any:
    async def go() -> Any:
        try:
            return await coro
        finally:
            await store.close()
    return asyncio.run(go())


def test_rpm_and_per_model_windows(store: Any) -> None:
    k = key(rpm=5, model_limits=(("big", 2, None),))

    async def go() -> tuple[list[Any], list[Any]]:
        big = [await store.admit(k, res(model="big"), 1.0) for _ in range(3)]
        fast = [await store.admit(k, res(model="fast"), 1.0) for _ in range(4)]
        return big, fast

    big, fast = run(store, go())
    assert big[:2] == [None, None] and big[2].reason == "rpm" and big[2].limit == 2
    assert fast[:3] == [None] * 3 and fast[3].reason == "rpm" and fast[3].limit == 5  # 2 big + 3 fast = 5
    assert 1 <= fast[3].retry_after <= 60


def test_tpm_reservation_settles_to_the_truth(store: Any) -> None:
    k = key(tpm=1000)

    async def go() -> list[Any]:
        a = res(tokens=700)
        out = [await store.admit(k, a, 1.0), await store.admit(k, res(tokens=700), 1.0)]
        await store.settle(k, a, 50, 0.0)
        await asyncio.sleep(0.05)  # SQLite settlements ride along with the next transaction (<= 20 ms)
        out += [await store.admit(k, res(tokens=700), 1.0), await store.admit(k, res(tokens=700), 1.0)]
        return out

    out = run(store, go())
    assert out[0] is None and out[1].reason == "tpm" and out[2] is None and out[3].reason == "tpm"


def test_streams_and_budget(store: Any) -> None:
    k = key(max_streams=2, budget=1.0)

    async def go() -> list[Any]:
        a, b = res(cost=0.4), res(cost=0.4)
        out = [await store.admit(k, a, 1.0), await store.admit(k, b, 1.0), await store.admit(k, res(cost=0.1), 1.0)]
        await store.settle(k, a, 10, 0.7)
        await asyncio.sleep(0.05)
        out.append(await store.admit(k, res(cost=0.1), 1.0))  # 0.7 spent + 0.4 reserved + 0.1 > 1
        await store.settle(k, b, 10, 0.2)
        await asyncio.sleep(0.05)
        out.append(await store.admit(k, res(cost=0.05), 1.0))
        out.append(await store.admit(k, res(cost=0.2), 1.0))  # 0.9 spent + 0.05 + 0.2 > 1
        return out

    out = run(store, go())
    assert out[0] is None and out[1] is None and out[2].reason == "streams"
    assert out[3].reason == "budget" and out[4] is None and out[5].reason == "budget"


def test_redis_admission_and_settlement_are_one_round_trip_each(redis_url: str) -> None:
    """Each admission is one EVALSHA (the script runs on the server), each settlement another: MONITOR
    shows no other command from the client (the commands the scripts run are tagged ``lua``)."""
    import threading

    import redis

    store = RedisLimits(redis_url, 1.0)
    k = key(rpm=1000, tpm=10**6, max_streams=100, budget=10.0)
    seen: list[dict[str, Any]] = []
    watching = threading.Event()

    def watch() -> None:
        with redis.Redis.from_url(redis_url).monitor() as m:
            watching.set()
            for cmd in m.listen():
                if cmd["command"] == "ECHO the-end":
                    return
                seen.append(cmd)

    async def go() -> None:
        first = res(cost=0.01)
        assert await store.admit(k, first, 0.0) is None  # a cold server loads the script once
        await store.settle(k, first, 5, 0.01)
        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        assert watching.wait(5)
        await asyncio.sleep(0.1)
        for _ in range(20):
            r = res(cost=0.01)
            assert await store.admit(k, r, 0.0) is None
            await store.settle(k, r, 5, 0.01)
        redis.Redis.from_url(redis_url).echo("the-end")
        thread.join(5)

    run(store, go())
    from_client = [c["command"].split()[0] for c in seen if c.get("client_type") != "lua"
                   and c["command"].split()[0] not in ("HELLO", "CLIENT")]  # connection set-up (the ECHO's)
    assert from_client == ["EVALSHA"] * 40
    assert len(seen) > 40  # (and the scripts' own commands were seen, tagged lua)


def test_a_burst_in_flight_at_once_is_decided_not_dropped(store: Any) -> None:
    """300 admissions in flight at once on one worker: exactly the limit admitted, every other one refused
    for the limit, none failing on the store (Redis: a bounded pool that queues, not "too many connections")."""
    k = key(rpm=60)

    async def go() -> list[Any]:
        return await asyncio.gather(*[store.admit(k, res(), 0.0) for _ in range(300)], return_exceptions=True)

    out = run(store, go())
    assert [o for o in out if isinstance(o, BaseException)] == []
    assert out.count(None) == 60
    assert [d.reason for d in out if d is not None] == ["rpm"] * 240
