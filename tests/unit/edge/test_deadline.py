"""``Deadline``: one lazily re-armed timer per request, with ``asyncio.timeout``'s semantics (no sockets)."""

from __future__ import annotations

import asyncio
import time

import pytest

from sluicegate.edge.deadline import Deadline


def _deadline() -> Deadline:
    task = asyncio.current_task()
    assert task is not None
    return Deadline(asyncio.get_running_loop(), task)


async def test_expiry_inside_the_block_becomes_timeout_error() -> None:
    d = _deadline()
    t0 = time.monotonic()
    with pytest.raises(TimeoutError), d:
        d.after(0.05)
        await asyncio.sleep(5)
    assert 0.04 <= time.monotonic() - t0 < 1.0
    assert d.expired
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # the cancellation it caused was taken back
    d.close()


async def test_moving_the_deadline_later_keeps_one_timer_and_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    timers: list[float] = []
    real_call_at = loop.call_at

    def counting_call_at(when: float, cb, *args, **kw):  # type: ignore[no-untyped-def]
        timers.append(when)
        return real_call_at(when, cb, *args, **kw)

    monkeypatch.setattr(loop, "call_at", counting_call_at)
    d = _deadline()
    with d:
        for _ in range(50):  # per-chunk pattern: after() before a read, clear() after it
            d.after(0.2)
            await asyncio.sleep(0)
            d.clear()
    assert len(timers) == 1  # asyncio.timeout().reschedule() would have made 100
    with pytest.raises(TimeoutError), d:
        d.after(0.05)
        await asyncio.sleep(5)
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
