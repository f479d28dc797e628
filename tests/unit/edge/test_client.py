"""``ClientWatch``: the request body as it arrives, the bounded whole-body read, and the disconnect watch.

Driven through plain ``receive``/``send`` callables (the ASGI contract itself); the end-to-end behaviour
under a real server is covered by tests/unit/publisher and tests/integration/test_publisher.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from sluicegate.edge.asgi import ClientGone, Message
from sluicegate.edge.client import BodyTooLarge, ClientWatch


def _feed(*messages: Message) -> tuple[list[Message], object]:
    queue = list(messages)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)  # nothing more from this client: block as a server does
        return {"type": "http.disconnect"}

    return queue, receive


async def _nosend(message: Message) -> None:
    pass


def _body(*chunks: bytes) -> list[Message]:
    return [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]


async def test_read_returns_the_whole_body_within_the_limit() -> None:
    _, receive = _feed(*_body(b"ab", b"", b"cd"))
    watch = ClientWatch(receive, _nosend)  # type: ignore[arg-type]
    watch.start(has_body=True)
    assert await watch.read(4) == b"abcd"
    assert watch.body_done
    watch.stop()


async def test_read_stops_at_the_first_chunk_past_the_limit() -> None:
    queue, receive = _feed(*_body(b"abc", b"def", b"never read"))
    watch = ClientWatch(receive, _nosend)  # type: ignore[arg-type]
    watch.start(has_body=True)
    with pytest.raises(BodyTooLarge) as caught:
        await watch.read(5)
    assert caught.value.limit == 5 and "5 bytes" in str(caught.value)
    assert len(queue) == 1  # the rest of the body was never pulled in
    watch.stop()


async def test_read_refuses_a_declared_length_over_the_limit_before_reading() -> None:
    queue, receive = _feed(*_body(b"x"))
    watch = ClientWatch(receive, _nosend)  # type: ignore[arg-type]
    watch.start(has_body=True)
    with pytest.raises(BodyTooLarge):
        await watch.read(10, declared=11)
    assert len(queue) == 1  # nothing was read
    watch.stop()


async def test_read_of_an_empty_body_and_a_client_that_leaves_mid_body() -> None:
    _, receive = _feed({"type": "http.request", "body": b"", "more_body": False})
    watch = ClientWatch(receive, _nosend)  # type: ignore[arg-type]
    watch.start(has_body=True)
    assert await watch.read(10) == b""
    watch.stop()

    _, receive = _feed({"type": "http.request", "body": b"a", "more_body": True}, {"type": "http.disconnect"})
    watch = ClientWatch(receive, _nosend)  # type: ignore[arg-type]
    watch.start(has_body=True)
    with pytest.raises(ClientGone):
        await watch.read(10)
    assert watch.disconnected
    watch.stop()


async def test_a_disconnect_cancels_the_handler_exactly_once() -> None:
    """The watcher returns after its one cancel: a handler that catches it and goes on is not hit again."""
    messages: list[Message] = [{"type": "http.disconnect"}, {"type": "http.disconnect"}]
    gone = asyncio.Event()

    async def receive() -> Message:
        await gone.wait()
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    cancels = 0

    async def handler() -> int:
        nonlocal cancels
        watch = ClientWatch(receive, _nosend)
        watch.start(has_body=False)
        try:
            for _ in range(2):
                try:
                    await asyncio.sleep(0.2)
                except asyncio.CancelledError:
                    cancels += 1
                    asyncio.current_task().uncancel()  # type: ignore[union-attr]
        finally:
            watch.stop()
        return cancels

    t = asyncio.create_task(handler())
    await asyncio.sleep(0.01)
    gone.set()
    assert await asyncio.wait_for(t, 2.0) == 1
    assert len(messages) == 1  # the watcher read one disconnect and ended


async def test_client_watch_disconnect_after_the_final_send_is_not_a_vanished_client() -> None:
    """uvicorn answers receive() with http.disconnect once the response is complete: normal end."""
    sent: list[Message] = []
    complete = asyncio.Event()

    async def receive() -> Message:
        await complete.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if not message.get("more_body", False):
            complete.set()

    watch = ClientWatch(receive, send)
    watch.start(has_body=False)
    await watch.send({"type": "http.response.start", "status": 200, "headers": []})
    await watch.send({"type": "http.response.body", "body": b"x", "more_body": False})
    await asyncio.sleep(0)  # the watcher wakes with http.disconnect here
    watch.stop()
    await asyncio.sleep(0.01)
    assert not watch.disconnected and len(sent) == 2


async def test_client_watch_cancels_the_handler_when_the_client_goes() -> None:
    gone = asyncio.Event()

    async def receive() -> Message:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        pass

    async def handler() -> str:
        watch = ClientWatch(receive, send)
        watch.start(has_body=False)
        try:
            await asyncio.sleep(10)  # waiting on the origin
        finally:
            watch.stop()
        return "not cancelled"

    t = asyncio.create_task(handler())
    await asyncio.sleep(0.01)
    gone.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(t, 1.0)


async def test_client_watch_stop_reaps_a_watcher_whose_receive_blocks() -> None:
    """Servers whose receive() blocks until the connection closes: the watcher is cancelled, not leaked."""

    async def receive() -> Message:
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        pass

    watch = ClientWatch(receive, send)
    watch.start(has_body=False)
    await asyncio.sleep(0)
    task = watch._task
    assert task is not None and not task.done()
    watch.stop()
    await asyncio.sleep(0.01)
    assert task.cancelled()


async def test_disconnect_hook_cancels_the_handler_without_a_task_and_not_after_the_end() -> None:
    """A server's ``DISCONNECT_HOOK`` (the native core's): the watch registers a callback once, the handler
    is cancelled when it is called before ``stop()``, a call after ``stop()`` cancels nothing, and the handler
    sends through the server's own ``send``."""
    from sluicegate.edge.asgi import DISCONNECT_HOOK
    from sluicegate.edge.client import start_request

    registered: list[Callable[[], None]] = []
    _, receive = _feed(*_body(b"x"))

    async def handler(stop_first: bool) -> str:
        watch, deadline = start_request(receive, _nosend, has_body=True,  # type: ignore[arg-type]
                                        scope={DISCONNECT_HOOK: registered.append})
        assert watch.sender is _nosend
        assert [c async for c in watch.body()] == [b"x"]
        assert len(registered) == 1 and watch._task is None  # registered after the body, no task
        try:
            if stop_first:
                watch.stop()
            registered[-1]()  # the connection is lost
            await asyncio.sleep(0)
            return "ran on"
        except asyncio.CancelledError:
            assert watch.disconnected
            return "cancelled"
        finally:
            deadline.close()
            watch.stop()

    assert await asyncio.create_task(handler(False)) == "cancelled"
    registered.clear()
    _, receive = _feed(*_body(b"x"))
    assert await asyncio.create_task(handler(True)) == "ran on"
