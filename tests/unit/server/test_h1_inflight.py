"""The native core's in-flight set (``ServerState.tasks``, what drain counts and cancels): a request's task is listed
while its app runs and leaves the set when it ends -- answered, failed, or cut by the client (pt4: ``Cycle.run``
takes itself out instead of a done-callback per request)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.unit.server.h1_harness import connect, read_response, serving, wait_for


def test_tasks_leave_the_inflight_set_however_they_end() -> None:
    running: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/boom":
            raise RuntimeError("app failure")
        if scope["path"] == "/hang":
            running.append(1)
            await asyncio.sleep(30)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    with serving("native", app) as srv:
        with connect(srv.port) as s:
            for _ in range(5):
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                assert read_response(s)[1] == b"ok"
        with connect(srv.port) as s:
            s.sendall(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(s)[0].startswith(b"HTTP/1.1 500 ")
        s = connect(srv.port)
        s.sendall(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_for(lambda: bool(running))
        assert len(srv.state.tasks) == 1  # listed while its app runs
        task = next(iter(srv.state.tasks))
        assert srv.loop is not None
        srv.loop.call_soon_threadsafe(task.cancel)  # as drain's cancel or a disconnect's would
        time.sleep(0.05)
        s.close()
        assert wait_for(lambda: not srv.state.tasks)
