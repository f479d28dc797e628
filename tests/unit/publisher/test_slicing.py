"""The work lane: paused transforms resume one per loop iteration, in order, and other work runs between."""

from __future__ import annotations

import asyncio
import itertools
import time

from sluicegate.publisher.slicing import TURN_S, Slice, WorkLane


async def test_round_robin_one_slice_per_iteration() -> None:
    loop = asyncio.get_running_loop()
    lane = WorkLane(loop)
    events: list[str] = []

    async def heavy(name: str) -> None:
        for _ in range(3):
            events.append(name)
            await lane.wait_turn()

    async def light() -> None:
        for _ in range(6):
            events.append("light")
            await asyncio.sleep(0)

    await asyncio.gather(heavy("a"), heavy("b"), heavy("c"), light())
    # after the first round (each starts once), heavy work resumes one task per loop iteration, a-b-c in
    # turn, and the light task (one step per iteration) runs between any two heavy slices while it has work
    assert [e for e in events[3:] if e != "light"] == ["a", "b", "c", "a", "b", "c"]
    last_light = max(i for i, e in enumerate(events) if e == "light")
    between = events[3 : last_light + 1]
    assert all(not (x != "light" and y != "light") for x, y in itertools.pairwise(between)), events


async def test_cancelled_waiter_is_skipped() -> None:
    lane = WorkLane(asyncio.get_running_loop())
    order: list[str] = []

    async def waiter(name: str) -> None:
        await lane.wait_turn()
        order.append(name)

    a = asyncio.create_task(waiter("a"))
    b = asyncio.create_task(waiter("b"))
    await asyncio.sleep(0)
    a.cancel()
    await asyncio.gather(a, b, return_exceptions=True)
    assert order == ["b"]
    assert len(lane) == 0


async def test_slice_budget() -> None:
    lane = WorkLane(asyncio.get_running_loop())
    s = Slice(lane, 0.002, "r1", "GET /")
    assert not s.spent()
    time.sleep(0.003)
    assert s.spent()
    await s.pause()
    assert not s.spent() and s.pauses == 1
    off = Slice(lane, 0.0, "r2", "GET /")  # slicing off: never spent
    time.sleep(0.003)
    assert not off.spent()


async def test_a_response_keeps_its_turn_for_turn_s_of_its_work() -> None:
    # Between heavy responses the lane switches only after TURN_S of a response's work (each switch evicts
    # the other's codec and rewriter state from the CPU caches); the loop still runs between its slices.
    lane = WorkLane(asyncio.get_running_loop())
    order: list[str] = []
    loop_turns = 0

    async def other() -> None:
        await lane.wait_turn()
        order.append("b")

    async def ticker() -> None:
        nonlocal loop_turns
        while "b" not in order:
            loop_turns += 1
            await asyncio.sleep(0)

    async def heavy() -> None:
        s = Slice(lane, 0.001, "a", "GET /a")
        while s.work_s(time.perf_counter()) < 3 * TURN_S:
            time.sleep(TURN_S / 8)  # one slice of work
            order.append("a")
            await s.pause()

    b = asyncio.create_task(other())
    t = asyncio.create_task(ticker())
    await asyncio.sleep(0)  # b waits in the lane first
    await heavy()
    await asyncio.gather(b, t)
    first_b = order.index("b")
    # a keeps the lane for about TURN_S of work (8 slices; fewer if a sleep overshoots), then b gets it
    assert 2 <= first_b <= 9, order
    assert first_b < len(order) - 1, order  # ...and a is not run to its end first
    assert loop_turns >= first_b  # the loop turned between a's slices all along


async def test_slices_pauses_count_towards_work_s() -> None:
    lane = WorkLane(asyncio.get_running_loop())
    s = Slice(lane, 0.001, "r", "GET /")
    time.sleep(0.004)
    await s.pause()
    s.idle()
    await asyncio.sleep(0.01)  # waiting (for the origin) is not work
    s.restart()
    time.sleep(0.004)
    worked = s.work_s(time.perf_counter())
    assert 0.008 <= worked < 0.018, worked
