"""``Deadline``: one lazily re-armed timer per request, with ``asyncio.timeout``'s semantics (no sockets)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from sluicegate.edge.deadline import Deadline


def _deadline() -> Deadline:
    task = asyncio.current_task()
    assert task is not None
    return Deadline(asyncio.get_running_loop(), task)


@pytest.fixture
async def timers(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The times of the loop timers armed from here on (the running loop's ``call_at`` counted)."""
    loop = asyncio.get_running_loop()
    armed: list[float] = []
    real_call_at = loop.call_at

    def counting_call_at(when: float, cb, *args, **kw):  # type: ignore[no-untyped-def]
        armed.append(when)
        return real_call_at(when, cb, *args, **kw)

    monkeypatch.setattr(loop, "call_at", counting_call_at)
    return armed


async def _expires(d: Deadline, seconds: float) -> None:
    """A wait bounded by ``seconds`` on ``d`` ends in ``TimeoutError`` (and marks ``d`` expired)."""
    with pytest.raises(TimeoutError), d:
        d.after(seconds)
        await asyncio.sleep(5)
    assert d.expired


async def test_expiry_inside_the_block_becomes_timeout_error() -> None:
    d = _deadline()
    t0 = time.monotonic()
    await _expires(d, 0.05)
    assert 0.04 <= time.monotonic() - t0 < 1.0
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # the cancellation it caused was taken back
    d.close()


async def test_moving_the_deadline_later_keeps_one_timer_and_still_expires(timers: list[float]) -> None:
    d = _deadline()
    with d:
        for _ in range(50):  # per-chunk pattern: after() before a read, clear() after it
            d.after(0.2)
            await asyncio.sleep(0)
            d.clear()
    assert len(timers) == 1  # asyncio.timeout().reschedule() would have made 100
    await _expires(d, 0.05)
    d.close()


async def test_an_earlier_deadline_rearms() -> None:
    d = _deadline()
    t0 = time.monotonic()
    with pytest.raises(TimeoutError), d:
        d.after(30)
        d.after(0.05)
        await asyncio.sleep(5)
    assert time.monotonic() - t0 < 1.0
    d.close()


async def test_cleared_deadline_does_not_fire_while_not_waiting() -> None:
    d = _deadline()
    with d:
        d.after(0.02)
        d.clear()  # e.g. writing to a slow client: backpressure, not origin silence
        await asyncio.sleep(0.1)
    assert not d.expired
    with d:  # the timer fired while cleared; the next wait arms a new one
        d.after(5)
        await asyncio.sleep(0.01)
    assert not d.expired
    d.close()


async def test_outer_cancellation_is_not_swallowed() -> None:
    async def victim() -> str:
        d = _deadline()
        try:
            with d:
                d.after(10)
                await asyncio.sleep(10)
        finally:
            d.close()
        return "swallowed"

    t = asyncio.create_task(victim())
    await asyncio.sleep(0.01)
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t


async def test_closed_deadline_never_fires() -> None:
    d = _deadline()
    d.after(0.02)
    d.close()
    await asyncio.sleep(0.06)
    assert not d.expired


async def test_requests_share_one_timer_and_each_expires_on_time(timers: list[float]) -> None:
    """pt4: one loop timer for every request's deadline (not one per request), each still exact."""
    ended: dict[int, float] = {}
    t0 = time.monotonic()

    async def request(i: int, seconds: float) -> None:
        d = _deadline()
        try:
            with d:
                d.after(seconds)
                await asyncio.Event().wait()  # (no timer of its own: only the deadlines' are counted)
        except TimeoutError:
            ended[i] = time.monotonic() - t0
        finally:
            d.close()

    # 20 requests whose deadlines come later than the first one's: the first arms the one timer, the rest list
    tasks = [asyncio.create_task(request(i, 0.05 + i * 0.01)) for i in range(20)]
    await asyncio.gather(*tasks)
    assert sorted(ended) == list(range(20))
    for i, took in ended.items():
        assert 0.05 + i * 0.01 - 0.005 <= took < 0.05 + i * 0.01 + 0.5
    assert len(timers) <= 20  # the first arms it, each expiry re-arms it for the next: never one per request


async def test_many_short_requests_arm_one_timer(timers: list[float]) -> None:
    first = _deadline()
    first.after(30)  # an earlier request still waiting: the timer is armed for it
    for _ in range(200):  # keep-alive requests, each bounded by the same 30 s, each answered at once
        d = _deadline()
        with d:
            d.after(30)
            await asyncio.sleep(0)
        d.close()
    assert len(timers) == 1
    assert len(first._sweep.listed) == 1  # closed deadlines leave the sweep: bounded by the requests in flight
    first.close()
    assert not first._sweep.listed


async def test_a_cleared_deadline_is_dropped_by_the_sweep_and_listed_again() -> None:
    d = _deadline()

    async def other_request() -> None:  # keeps the sweep's timer firing past d's time
        other = _deadline()
        with contextlib.suppress(TimeoutError), other:
            other.after(0.03)
            await asyncio.sleep(5)
        other.close()

    with d:
        d.after(0.02)
        d.clear()
        await asyncio.create_task(other_request())
        await asyncio.sleep(0.03)
    assert not d.expired
    assert d not in d._sweep.listed  # dropped while nothing was bounded
    await _expires(d, 0.03)
    d.close()
