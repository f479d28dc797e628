"""The work lane: paused transforms resume one per loop iteration, in order, and other work runs between."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time

import pytest

from sluicegate.publisher import slicing
from sluicegate.publisher.slicing import (
    AFTER_IO_PAUSES,
    QUIET_PAUSE_S,
    QUIET_PAUSES,
    STRETCH_S,
    TURN_S,
    PauseGate,
    ReadyProbe,
    Slice,
    WorkLane,
)


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


# ------------------------------------------------------------------- which pause: PauseGate


def test_pause_gate_light_only_after_quiet_pauses_in_a_row() -> None:
    gate = PauseGate()
    for _ in range(QUIET_PAUSES):
        assert not gate.light(others_waiting=False)  # not yet known to be alone
        gate.observe(QUIET_PAUSE_S / 10)
    assert gate.light(others_waiting=False)
    assert not gate.light(others_waiting=True)  # another response waits in the lane: its turn comes first
    gate.observe(QUIET_PAUSE_S * 2)  # something else ran in that pause (a request, a transform, the OS)
    assert not gate.light(others_waiting=False)
    for _ in range(QUIET_PAUSES - 1):
        gate.observe(QUIET_PAUSE_S)  # (the bound itself is quiet)
        assert not gate.light(others_waiting=False)
    gate.observe(0.0)
    assert gate.light(others_waiting=False)


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def test_alone_on_the_loop_a_pause_is_one_iteration(monkeypatch: pytest.MonkeyPatch) -> None:
    # (a fake clock that stands still in a pause: every pause is quiet, as on an idle machine; the real-clock
    # version failed on a loaded box whenever the OS pre-empted the test within a pause)
    clock = FakeClock()
    monkeypatch.setattr(slicing, "_clock", clock)
    lane = WorkLane(asyncio.get_running_loop())
    s = Slice(lane, 0.0005, "r", "GET /")
    pauses = 4 * QUIET_PAUSES
    for _ in range(pauses):
        clock.now += 0.0005
        await s.pause()
    # the first QUIET_PAUSES are lane pauses (two iterations); once they were all quiet, one iteration each
    assert s.pauses == pauses
    assert s.light_pauses == pauses - QUIET_PAUSES
    # one slow pause (the OS, another task) puts it back on lane pauses for QUIET_PAUSES more
    s._gate.observe(2 * QUIET_PAUSE_S)
    light = s.light_pauses
    for _ in range(QUIET_PAUSES):
        clock.now += 0.0005
        await s.pause()
    assert s.light_pauses == light


async def test_a_busy_loop_keeps_lane_pauses_and_two_steps_per_slice() -> None:
    # Other work on the loop (here: a task whose steps each take 0.5 ms, like a small request's) makes every
    # pause busy, so the heavy response never takes one-iteration pauses: the other task keeps two steps per
    # heavy slice, as before (each pause lets the loop run twice).
    lane = WorkLane(asyncio.get_running_loop())
    s = Slice(lane, 0.0005, "r", "GET /")
    steps = 0
    done = False

    async def other() -> None:
        nonlocal steps
        while not done:
            _spin(QUIET_PAUSE_S * 2)
            steps += 1
            await asyncio.sleep(0)

    t = asyncio.create_task(other())
    await asyncio.sleep(0)
    pauses = 3 * QUIET_PAUSES
    for _ in range(pauses):
        _spin(0.0005)
        await s.pause()
    done = True
    await t
    assert s.light_pauses == 0
    assert steps >= 2 * pauses - 2, (steps, pauses)


async def test_a_response_waiting_in_the_lane_ends_one_iteration_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()  # (pauses are quiet: see test_alone_on_the_loop_a_pause_is_one_iteration)
    monkeypatch.setattr(slicing, "_clock", clock)
    loop = asyncio.get_running_loop()
    lane = WorkLane(loop)
    a = Slice(lane, 0.0005, "a", "GET /a")
    for _ in range(QUIET_PAUSES + 2):
        clock.now += 0.0005
        await a.pause()
    light_before = a.light_pauses
    assert light_before == 2
    b_ran = asyncio.Event()

    async def b() -> None:
        await lane.wait_turn()
        b_ran.set()

    tb = asyncio.create_task(b())
    await asyncio.sleep(0)  # b waits in the lane
    clock.now += 0.0005
    await a.pause()  # a sees b waiting: a lane pause (b's turn comes)
    assert a.light_pauses == light_before
    await tb
    assert b_ran.is_set()


# ------------------------------------------------------------------- holding the lane within a turn


async def test_within_its_turn_a_response_holds_the_lane_with_bare_yields() -> None:
    # Another heavy response waits: the one within its turn pauses with a bare yield (no future in the lane)
    # and the waiter is not resumed; the loop still runs once per slice (the ticker steps in between).
    lane = WorkLane(asyncio.get_running_loop())
    b_ran = asyncio.Event()
    ticks = 0

    async def b() -> None:
        await lane.wait_turn()
        b_ran.set()

    async def ticker() -> None:
        nonlocal ticks
        while not b_ran.is_set():
            ticks += 1
            await asyncio.sleep(0)

    tb, tt = asyncio.create_task(b()), asyncio.create_task(ticker())
    await asyncio.sleep(0)  # b waits in the lane
    a = Slice(lane, 0.0005, "a", "GET /a")
    slices = 8  # ~4 ms of work, well within TURN_S
    for i in range(slices):
        _spin(0.0005)
        await a.pause()
        assert len(lane) == 1 and not b_ran.is_set(), i  # only b's future waits; a holds
    assert lane._holder is a
    assert ticks >= slices
    a.done()  # a ends (or waits for its origin: idle()): the lane goes to b at once
    assert lane._holder is None
    await asyncio.wait_for(tb, 1)
    await tt


async def test_a_holder_that_stops_pausing_loses_the_lane_after_one_iteration() -> None:
    # A holder suspended elsewhere (a send waiting for a slow client) must not keep the others waiting.
    lane = WorkLane(asyncio.get_running_loop())
    order: list[str] = []

    async def b() -> None:
        await lane.wait_turn()
        order.append("b")

    tb = asyncio.create_task(b())
    await asyncio.sleep(0)
    a = Slice(lane, 0.0005, "a", "GET /a")
    _spin(0.0005)
    await a.pause()
    assert lane._holder is a
    await asyncio.sleep(0.01)  # a is away for many iterations without pausing
    order.append("a back")
    assert order == ["b", "a back"]
    await tb


async def test_a_holder_whose_turn_ends_goes_to_the_back() -> None:
    lane = WorkLane(asyncio.get_running_loop())
    order: list[str] = []

    async def b() -> None:
        await lane.wait_turn()
        order.append("b")

    tb = asyncio.create_task(b())
    await asyncio.sleep(0)
    a = Slice(lane, 0.001, "a", "GET /a")
    while "b" not in order:
        _spin(TURN_S / 8)  # one slice of work
        order.append("a")
        await a.pause()
    assert lane._holder is not a
    # a held the lane for about TURN_S of its work (8 slices; fewer if a spin is pre-empted), then b's turn
    assert 2 <= order.index("b") <= 9, order
    await tb


# ------------------------------------------------------------------- nothing to be fair to: stretches


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeProbe:
    def __init__(self) -> None:
        self.ready = False
        self.polls = 0

    def io_ready(self) -> bool:
        self.polls += 1
        return self.ready


async def _quiet_lane(monkeypatch: pytest.MonkeyPatch, stretch_s: float = STRETCH_S
                      ) -> tuple[WorkLane, FakeClock, FakeProbe, Slice]:
    """A lane whose loop turns were all quiet (the fake clock does not move in a pause) and a response that
    has just paused QUIET_PAUSES times in it."""
    clock = FakeClock()
    monkeypatch.setattr(slicing, "_clock", clock)
    probe = FakeProbe()
    lane = WorkLane(asyncio.get_running_loop(), probe)  # type: ignore[arg-type]
    lane.stretch_s = stretch_s
    s = Slice(lane, 0.001, "r", "GET /")
    for _ in range(QUIET_PAUSES):
        clock.now += 0.001
        assert s.spent()
        await s.pause()
    assert lane.quiet == QUIET_PAUSES
    return lane, clock, probe, s


async def test_a_spent_slice_runs_on_while_nothing_is_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing else on the loop: no I/O, quiet turns. A spent slice is not paused: the response works on,
    # checking again every slice, until STRETCH_S since it last let the loop run.
    _lane, clock, probe, s = await _quiet_lane(monkeypatch)
    pauses = s.pauses
    ran = 0.0
    while not s.spent():
        clock.now += 0.0004  # one piece of work
        ran += 0.0004
        assert ran < STRETCH_S + 0.001, "the stretch did not end"
    assert ran >= STRETCH_S - 0.0004
    # slices end at 1.2, 2.4, ... 7.2 ms of work (3 pieces each): each ran on; the one at 8.4 ms pauses
    assert s.pauses == pauses and s.stretched == 6
    assert probe.polls == s.stretched  # one poll per spent slice (none past the stretch bound)
    await s.pause()
    assert not s.spent()


async def test_io_ready_ends_the_stretch_within_one_slice_with_a_lane_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    lane, clock, probe, s = await _quiet_lane(monkeypatch)
    clock.now += 0.0011
    assert not s.spent() and s.stretched == 1
    probe.ready = True  # a request's bytes, a new connection, a client's close
    clock.now += 0.0011
    assert s.spent()  # at the next slice boundary
    # the pause is a lane pause (two loop iterations: what the I/O woke gets its first step first), not a
    # bare yield, even though the response was alone and quiet
    steps = 0

    async def woken() -> None:
        nonlocal steps
        for _ in range(3):
            steps += 1
            await asyncio.sleep(0)

    t = asyncio.create_task(woken())
    light = s.light_pauses
    await s.pause()
    assert s.light_pauses == light
    assert steps >= 2
    await t
    # and stretches wait for AFTER_IO_PAUSES quiet turns
    probe.ready = False
    assert lane.quiet == QUIET_PAUSES - AFTER_IO_PAUSES + 1
    clock.now += 0.0011
    assert s.spent()
    await s.pause()
    clock.now += 0.0011
    assert not s.spent() and s.stretched == 2


async def test_a_busy_turn_ends_stretches(monkeypatch: pytest.MonkeyPatch) -> None:
    # Callbacks in the ready queue show in no poll: a turn that ran any (it took longer than QUIET_PAUSE_S)
    # sets the quiet count back to 0, so a woken task's further steps are not held up by stretches.
    lane, clock, _probe, s = await _quiet_lane(monkeypatch)
    lane.let_go(clock.now)
    clock.now += 2 * QUIET_PAUSE_S
    lane.took_back(clock.now)
    assert lane.quiet == 0
    clock.now += 0.0011
    assert s.spent()


async def test_no_stretch_when_stretch_s_is_0_or_without_a_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    lane, clock, _probe, s = await _quiet_lane(monkeypatch, stretch_s=0.0)
    clock.now += 0.0011
    assert s.spent() and s.stretched == 0
    lane.stretch_s, lane.probe = STRETCH_S, None
    assert s.spent() and s.stretched == 0


async def test_with_others_waiting_a_stretch_ends_with_the_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    # Heavy responses among themselves: the holder stretches within its turn, and the turn still ends
    # after TURN_S of its work (the next heavy response's turn is not delayed by stretches).
    lane, clock, _probe, s = await _quiet_lane(monkeypatch)
    other_ran = asyncio.Event()

    async def other() -> None:
        await lane.wait_turn()
        other_ran.set()

    t = asyncio.create_task(other())
    await asyncio.sleep(0)  # (the fake clock stands still: a quiet turn)
    assert len(lane) == 1
    worked = 0.0
    while not other_ran.is_set():
        clock.now += 0.0005
        worked += 0.0005
        if s.spent():
            await s.pause()
        assert worked < TURN_S + STRETCH_S + 0.002, "the turn did not end"
    assert s.stretched > 0
    await t


async def test_the_probe_sees_io_ready_on_the_loop() -> None:
    loop = asyncio.get_running_loop()
    probe = ReadyProbe.for_loop(loop)
    assert probe is not None
    a, b = socket.socketpair()
    got = asyncio.Event()
    with a, b:
        loop.add_reader(a.fileno(), lambda: (a.recv(16), got.set()))
        try:
            await asyncio.sleep(0)
            assert not probe.io_ready()
            b.send(b"x")
            assert probe.io_ready()
            await asyncio.wait_for(got.wait(), 1)
            assert not probe.io_ready()
        finally:
            loop.remove_reader(a.fileno())


async def test_a_real_stretch_is_ended_by_a_request_within_one_slice() -> None:
    # Real loop, real socket, real clock: a heavy "response" alone stretches; bytes arriving on a socket the
    # loop watches get their callback run after at most about one more slice of heavy work, not a stretch.
    loop = asyncio.get_running_loop()
    lane = WorkLane(loop, ReadyProbe.for_loop(loop))
    s = Slice(lane, 0.0005, "r", "GET /")
    a, b = socket.socketpair()
    arrived: list[int] = []
    pieces = 0
    with a, b:
        loop.add_reader(a.fileno(), lambda: (a.recv(16), arrived.append(pieces)))
        try:
            sent_at = -1
            deadline = time.perf_counter() + 5
            while not arrived and time.perf_counter() < deadline:
                _spin(0.0001)  # a piece
                pieces += 1
                if sent_at < 0 and s.stretched >= 5:  # stretching now
                    b.send(b"GET /small")
                    sent_at = pieces
                if s.spent():
                    await s.pause()
        finally:
            loop.remove_reader(a.fileno())
    assert sent_at >= 0, "never stretched (the loop was never quiet?)"
    assert arrived, "the bytes' callback never ran"
    # within one slice (5 pieces of 0.1 ms) and a pause, not a stretch of STRETCH_S (80 pieces)
    assert arrived[0] - sent_at <= 10, (sent_at, arrived[0])
