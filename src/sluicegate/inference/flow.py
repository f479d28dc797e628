"""The byte relay's per-read step, run in the provider connection's data callback (compiled with mypyc).

Owns ``Flow``: per read from the provider (``upstream.ondata.DataWatch`` calls ``on_data``) it takes the
buffered bytes, counts them against the response cap, runs the relay's tap step (``SseTap.split``: event-aligned,
an incomplete event held until its end; or the JSON tap's ``feed``), moves the idle deadline, and puts the
chunk on the client's wire: through the server's ``edge.asgi.BODY_WRITE`` when it offers one and can write now
(one call: the chunk framed and written; the request's ``bytes_out`` counted here, as the observer's ``send``
wrapper would have), else through the client's ``send``, driving that coroutine in place (it completes without
suspending unless the client pushes back). Same bytes, same order, same framing either way. The relay task is
woken (``waiter``) only when it must act: the response ended or failed, the cap was passed, ``send`` raised
(``error``), or the client pushed back (``blocked_coro``/``blocked_on``: the suspended ``send``, finished by the
task; nothing more is written from here once the task is woken).

Synchronous only: ``inference.pump`` (interpreted) owns the coroutine side (the wait, the resumed ``send``);
compiled coroutines kept a handled exception in the task's exception state (docs/inference.md). Must not know
protocols, candidates, credentials or metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sluicegate.edge.asgi import Send
from sluicegate.edge.deadline import Deadline
from sluicegate.upstream.http1 import OriginResponse
from sluicegate.upstream.ondata import DataWatch


class Flow:
    """One streamed byte relay's callback step (see the module)."""

    def __init__(self, resp: OriginResponse, send: Send, write: Callable[[bytes], bool] | None,
                 step: Callable[[bytes], bytes], cap: int, deadline: Deadline, idle: float, end: float,
                 info: Any) -> None:
        self.watch: DataWatch | None = DataWatch(resp, self.on_data)  # (None once closed)
        self.send = send
        self.write = write  # the server's BODY_WRITE, or None
        self.step = step  # the tap's step: bytes in -> bytes to send now
        self.cap = cap
        self.deadline = deadline
        self.idle = idle
        self.end = end  # perf_counter time the whole exchange must end by (0: no total cap)
        self.info = info  # the request's access-log record (bytes_out), or None
        self.waiter: Any = None  # the relay task's future while it waits (set by inference.pump)
        self.blocked_coro: Any = None  # a send that suspended (client backpressure), for the task to finish
        self.blocked_on: Any = None  # what it waits for
        self.error: BaseException | None = None
        self.cap_exceeded = False
        self.pushbacks = 0
        self.written = 0  # chunks that went out through BODY_WRITE (tests, debugging)
        self.total = 0

    def close(self) -> None:
        """The relay is over: drop the watch. (The watch holds ``on_data``, so holding it back would be a reference
        cycle keeping the whole exchange — the core's cycle, the task, the deadline — for the cyclic collector.)"""
        self.watch = None

    def arm(self) -> None:
        """Bound the wait for the provider's next read: the idle timeout, or what is left of the total cap."""
        end = self.end
        if end:
            left = end - time.perf_counter()
            self.deadline.after(min(self.idle, left) if left > 0 else 0.0)
        else:
            self.deadline.after(self.idle)

    def on_data(self) -> None:
        fut = self.waiter
        if fut is None or fut.done():
            return  # the task has been woken (or cancelled): it owns the exchange; the bytes stay buffered
        watch = self.watch
        if watch is None:
            return
        if watch.finished():
            fut.set_result(None)  # the end (with its last bytes) or a failure: the task's
            return
        chunk = watch.take()
        if not chunk:
            return
        total = self.total + len(chunk)
        self.total = total
        if total > self.cap:
            self.cap_exceeded = True
            fut.set_result(None)
            return
        chunk = self.step(chunk)
        self.arm()
        if not chunk:
            return
        write = self.write
        if write is not None and write(chunk):
            info = self.info
            if info is not None:
                info.bytes_out += len(chunk)
            self.written += 1
            return
        coro: Any = self.send({"type": "http.response.body", "body": chunk, "more_body": True})
        try:
            blocked_on = coro.send(None)
        except StopIteration:
            return
        except BaseException as exc:  # (the task re-raises it)
            self.error = exc
            fut.set_result(None)
            return
        self.blocked_coro = coro
        self.blocked_on = blocked_on
        self.pushbacks += 1
        fut.set_result(None)
