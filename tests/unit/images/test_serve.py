"""``images.serve``: the loop-lag timer parks while an image request only waits for its image thread."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping, Sequence
from typing import Any

from sluicegate.images.job import Job, Result
from sluicegate.images.pool import Ticket
from sluicegate.images.serve import ImageOptimizer
from sluicegate.observability import looplag
from tests.unit.images.test_profiles import settings

JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 2000


class Source:
    status = 200

    def __init__(self) -> None:
        self.headers = [(b"content-type", b"image/jpeg"), (b"content-length", str(len(JPEG)).encode())]
        self.body = [JPEG]

    async def read(self) -> bytes:
        return self.body.pop() if self.body else b""

    def release(self) -> None:
        return


class Exchange:
    method = "GET"
    path = "/img/a.jpg"
    client_query = b"profile=medium"
    target = "/img/a.jpg?profile=medium"

    def __init__(self) -> None:
        self.headers = [("accept", "image/webp")]

    async def fetch(self, method: str = "GET", extra: Sequence[tuple[str, str]] = (), *,
                    drop: frozenset[str] = frozenset(), target: str | None = None) -> Source:
        return Source()

    def response_headers(self, status: int, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return headers


class Pool:
    """Stands for the image pool: while "the thread" works, what the loop-lag monitor does is recorded."""

    def __init__(self, mon: looplag.LoopLagMonitor) -> None:
        self.mon = mon
        self.seen: dict[str, Any] = {}

    def admit(self) -> Ticket:
        return Ticket(self)  # type: ignore[arg-type]

    def _free(self) -> None:
        return

    async def run(self, ticket: Ticket, job: Job) -> Result:
        self.seen["in_flight"] = self.mon.in_flight
        for _ in range(100):  # the loop has nothing else to do for a while
            await asyncio.sleep(0.002)
            if self.mon.parked:
                break
        self.seen["parked"] = self.mon.parked
        ticks = self.mon.ticks
        await asyncio.sleep(0.03)
        self.seen["ticks_while_parked"] = self.mon.ticks - ticks
        return Result(b"RIFF0000WEBP", "webp", 800, 600, 1600, 1200)


async def test_waiting_for_the_image_thread_parks_the_lag_timer_and_the_answer_rearms_it() -> None:
    looplag.stop_monitor()
    mon = looplag.start_monitor(0.001, 10.0)
    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        assert mon.in_flight == 1 and not mon.parked  # the answer is the request's loop work again
        sent.append(message)

    try:
        pool = Pool(mon)
        opt = ImageOptimizer(settings(), "web", pool)  # type: ignore[arg-type]
        looplag.enter()  # the request, as the app counts it
        assert await opt.maybe_optimize(Exchange(), send)
        assert pool.seen == {"in_flight": 0, "parked": True, "ticks_while_parked": 0}
        assert mon.in_flight == 1  # counted again once the image is back (the app's leave() balances it)
        assert sent[0]["status"] == 200 and sent[1]["body"] == b"RIFF0000WEBP"
        looplag.leave()
        assert mon.in_flight == 0
    finally:
        looplag.stop_monitor()


async def test_a_failed_image_still_counts_the_request_again() -> None:
    looplag.stop_monitor()
    mon = looplag.start_monitor(0.001, 10.0)

    class Failing(Pool):
        async def run(self, ticket: Ticket, job: Job) -> Result:
            self.seen["in_flight"] = self.mon.in_flight
            raise asyncio.CancelledError  # the client went away

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    try:
        pool = Failing(mon)
        opt = ImageOptimizer(settings(), "web", pool)  # type: ignore[arg-type]
        looplag.enter()
        try:
            await opt.maybe_optimize(Exchange(), send)
        except asyncio.CancelledError:
            pass
        assert pool.seen["in_flight"] == 0 and mon.in_flight == 1 and not sent
        looplag.leave()
    finally:
        looplag.stop_monitor()
