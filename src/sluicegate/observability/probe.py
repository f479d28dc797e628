"""Backend reachability for readiness: a TCP connect to the origin and to every remote provider.

Owns the list of backends a config names (``backends(settings)``), one probe loop, and the last result per
backend (up or not, why, and when). A TCP connect is what "reachable" means here: it proves the address
resolves and something accepts, without spending provider quota or origin capacity. A provider reached
through an outbound proxy (``HTTPS_PROXY``/``HTTP_PROXY``, not excluded by ``NO_PROXY``) is probed at the
proxy: that is the address the gateway connects to. Must not know about HTTP serving or workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:  # the supervisor runs the prober without the config model (server.supervisor_view)
    from sluicegate.config.model import Settings


class Target(Protocol):
    """A backend to probe, as the supervisor's view holds it."""

    @property
    def name(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def probed(self) -> bool: ...


@dataclass(slots=True)
class Backend:
    name: str  # "origin", "route:<name>" ([[publisher.routes]]) or "provider:<name>"
    host: str
    port: int
    up: bool | None = None  # None: not probed yet
    checked: float = 0.0  # time.monotonic() of the last probe
    error: str = ""
    latency_ms: float = 0.0
    probed: bool = True  # False: embedded (in-process mock), always up

    def view(self, now: float) -> dict[str, object]:
        return {
            "name": self.name,
            "address": f"{self.host}:{self.port}" if self.probed else "embedded",
            "up": True if not self.probed else self.up,
            "last_probe_age_s": round(now - self.checked, 3) if self.checked else None,
            "latency_ms": round(self.latency_ms, 3) if self.up else None,
            "error": self.error or None,
        }


def backends(settings: Settings) -> list[Backend]:
    from sluicegate.upstream.proxy import ProxyEnv

    out: list[Backend] = []
    if settings.publisher.enabled:
        origin = settings.publisher.origin
        out.append(Backend("origin", origin.host.strip("[]"), origin.port))
        for route in settings.publisher.routes:  # each route's backend, probed on its own
            o = route.origin
            out.append(Backend(f"route:{route.name}", o.host.strip("[]"), o.port))
    inf = settings.inference
    if inf.enabled:
        try:
            proxies: ProxyEnv | None = ProxyEnv(os.environ)
        except ValueError:  # a malformed proxy variable: the gateway refuses to start and says why
            proxies = None
        for p in inf.providers:
            url = p.effective_base_url
            if not url:
                out.append(Backend(f"provider:{p.name}", "", 0, up=True, probed=False))
                continue
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            proxy = proxies.for_url(parts.scheme, parts.hostname or "", port) if proxies is not None else None
            if proxy is not None:  # the first hop is the proxy
                out.append(Backend(f"provider:{p.name}", proxy.host, proxy.port))
                continue
            out.append(Backend(f"provider:{p.name}", parts.hostname or "", port))
    return out


async def probe_once(backend: Backend, timeout: float) -> None:
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            _reader, writer = await asyncio.open_connection(backend.host, backend.port)
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        backend.up, backend.error = True, ""
        backend.latency_ms = (time.perf_counter() - t0) * 1000
    except TimeoutError:
        backend.up, backend.error = False, f"connect timed out after {timeout:g}s"
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else (exc.strerror or "unreachable")
        backend.up, backend.error = False, f"connect failed: {why}"
    backend.checked = time.monotonic()


class Prober:
    def __init__(self, targets: Iterable[Target], interval: float, timeout: float) -> None:
        self.backends: list[Backend] = []
        self.interval = 5.0
        self.timeout = 2.0
        self.configure(targets, interval, timeout)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def configure(self, targets: Iterable[Target], interval: float, timeout: float) -> None:
        """New backend list (``backends(settings)``, or the supervisor's view of them; reload): results of
        backends that did not change are kept."""
        old = {(t.name, t.host, t.port): t for t in self.backends}
        fresh = [Backend(t.name, t.host, t.port, probed=t.probed, up=None if t.probed else True) for t in targets]
        self.backends = [old.get((b.name, b.host, b.port), b) for b in fresh]
        self.interval = interval
        self.timeout = timeout

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def poke(self) -> None:
        self._wake.set()

    async def probe_all(self) -> None:
        await asyncio.gather(*(probe_once(b, self.timeout) for b in self.backends if b.probed))

    async def _run(self) -> None:
        while True:
            await self.probe_all()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    def all_up(self) -> bool:
        return all(b.up for b in self.backends if b.probed)
