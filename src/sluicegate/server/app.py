"""The ASGI application: dispatch to the inference gateway or the publisher proxy.

Runs under any ASGI server (``create_app`` reads ``SLUICEGATE_CONFIG``); ``server.run`` starts it
under the worker's serving core (``[server] http_core``: the native ``server.h1`` or uvicorn). Every
request passes through ``observe.Observer`` (request id, metrics, access log): a server that offers
``edge.asgi.OBSERVE_HOOK`` (the native core) keeps the request's counts itself, any other gets ``receive``/``send``
wrapped. There are no own endpoints
on the public listener: ``/_sluicegate/*`` is proxied like any path; metrics, health and status live on
the admin listener (``server.admin``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from typing import Any

from sluicegate.config import Settings, load_settings
from sluicegate.edge.asgi import OBSERVE_HOOK, Receive, Scope, Send, quiet_expected_aborts, send_simple
from sluicegate.edge.lifespan import serve_lifespan
from sluicegate.observability import looplag
from sluicegate.publisher import slicing
from sluicegate.publisher.app import PublisherApp
from sluicegate.publisher.routes import PublisherRoutes, build_publisher
from sluicegate.server import malloc
from sluicegate.server.observe import Observer

log = logging.getLogger("sluicegate")


_GC_GEN0_THRESHOLD = 20_000


class SluicegateApp:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.publisher: PublisherApp | PublisherRoutes | None = (
            build_publisher(settings) if settings.publisher.enabled else None  # [[publisher.routes]]: route table
        )
        self.inference: Any = None
        self.first_party: Any = None
        if settings.first_party.enabled:
            from sluicegate.firstparty.endpoints import FirstPartyEndpoints
            from sluicegate.identity.edge import EdgeIdentity

            identity = EdgeIdentity.from_settings(settings.identity) if settings.identity.enabled else None
            self.first_party = FirstPartyEndpoints(settings, identity)
        if settings.inference.listen_hosts or settings.inference.path_prefix:
            from sluicegate.inference.app import InferenceApp

            self.inference = InferenceApp(settings)
        self.observer = Observer(settings)
        self.websocket: Any = None  # upgrades go to publisher.websocket (server.worker hands it to the core)
        if settings.publisher.enabled:
            from sluicegate.publisher.websocket import WebSocketProxy

            self.websocket = WebSocketProxy(settings, self._other_face)
        self._started = False
        self.lag: looplag.LoopLagMonitor | None = None  # this worker loop's lag monitor, once started
        quiet_expected_aborts()

    async def startup(self) -> None:
        if self._started:
            return
        self._started = True
        ev = self.settings.event_loop
        self.lag = looplag.start_monitor(ev.lag_resolution_ms / 1000.0, ev.stall_warn_ms / 1000.0, ev.idle_park)
        # [event_loop] stretch_ms, on this worker loop's work lane (docs/fairness.md)
        slicing.lane_for(asyncio.get_running_loop()).stretch_s = ev.stretch_ms / 1000.0
        if self.publisher is not None:
            await self.publisher.startup()
        if self.inference is not None:
            await self.inference.startup()
        # Everything allocated so far lives for the whole process: move it out of the collector's
        # sight, so full collections under load no longer walk it (py-spy showed 8-13 % in gc).
        gc.collect()
        gc.freeze()
        malloc.trim()  # and give back what start-up freed (import and validation garbage): ~1 MiB resident
        # Request-scoped objects (tasks, futures, header dicts) die by refcount within a request;
        # a young generation of 700 made the collector walk them ~every request (12 % of a 2 KB
        # relay under wrk). 20,000 lets them die first: +4-6 % req/s, memory still bounded.
        gc.set_threshold(_GC_GEN0_THRESHOLD, 10, 10)

    async def shutdown(self) -> None:
        self.observer.shutdown()
        looplag.stop_monitor()
        if self.publisher is not None:
            await self.publisher.shutdown()
        if self.inference is not None:
            await self.inference.shutdown()
        if self.first_party is not None:
            await self.first_party.shutdown()
        self._started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if not self._started:
                await self.startup()  # servers without lifespan support
            observer = self.observer
            info = observer.begin(scope)
            tally = scope.get(OBSERVE_HOOK)
            if tally is None:
                receive, send = observer.wrap(info, receive, send)
            else:  # the server keeps info's status, time to head and byte counts itself (native core)
                tally(info)
            error: BaseException | None = None
            lag = self.lag
            if lag is not None:
                lag.enter()  # in flight: the loop-lag monitor samples (a parked one wakes)
            try:
                if self.first_party is not None and self.first_party.matches(scope["path"]):
                    observer.started(info, "first_party", scope)
                    await self.first_party(scope, receive, send)
                elif self.inference is not None and self.inference.matches(scope):
                    observer.started(info, "inference", scope)
                    await self.inference(scope, receive, send)
                elif self.publisher is not None:
                    observer.started(info, "publisher", scope)
                    await self.publisher(scope, receive, send)
                else:
                    observer.started(info, "none", scope)
                    await send_simple(observer.tag(info, send), 404, b"Not found\n")
            except BaseException as exc:
                error = exc
                raise
            finally:
                if lag is not None:
                    lag.leave()
                observer.finish(info, error)
        elif kind == "lifespan":
            await serve_lifespan(receive, send, self.startup, self.shutdown)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1003})

    def _other_face(self, scope: Scope) -> bool:
        """A request for the first-party endpoints or the inference face (not a publisher route)."""
        if self.first_party is not None and self.first_party.matches(scope["path"]):
            return True
        return self.inference is not None and bool(self.inference.matches(scope))


def create_app() -> SluicegateApp:
    """ASGI factory for any server: ``uvicorn --factory sluicegate.server.app:create_app``.

    Settings come from the file named by ``SLUICEGATE_CONFIG`` plus ``SLUICEGATE__*`` overrides.
    """
    path = os.environ.get("SLUICEGATE_CONFIG") or None
    return SluicegateApp(load_settings(path))
