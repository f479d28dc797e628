"""The supervisor: N worker processes on one listening socket, the admin listener, reload and shutdown.

``sluicegate serve`` runs this process; it never handles a proxied request. Owns:
  * workers: ``python -m sluicegate.server.worker`` children sharing the listening socket (the kernel
    spreads connections), each given a validated config snapshot; one that exits unexpectedly is logged
    and replaced (with a pause when they crash in a loop);
  * reload (SIGHUP, ``sluicegate reload``): re-read the file and have it validated (and an app built from
    it) by a short-lived child (``server.configcheck``); refused with its error (the running generation keeps
    serving) or a new generation started; once all of it is ready the old one is
    told to drain: in-flight requests finish on the old config, new connections get the new one;
  * shutdown (SIGTERM, SIGINT): stop accepting, workers drain up to ``[server] shutdown_timeout`` then cut
    what is left; exit code 1 if any request was cut (or a worker failed), else 0;
  * the admin listener (``server.admin``) with metrics summed over all workers (``PROMETHEUS_MULTIPROC_DIR``,
    a private directory set before any worker starts) and readiness from ``observability.probe``: the parts
    shared with the one-process mode (runtime directory, generations, admin state, reload check) are
    ``server.instance``'s.
Holds no app and no config model: what it needs of a config is ``server.supervisor_view`` (plain data made
by the child), so the process that lives as long as the server stays small (docs/operations.md, footprint).
Must not know what the workers do with requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from sluicegate import __version__
from sluicegate.server.configcheck import check_buildable
from sluicegate.server.instance import Generation, Instance
from sluicegate.server.supervisor_view import SupervisorView

__all__ = ["Supervisor", "check_buildable"]  # check_buildable: in-process, for ``check-config``

log = logging.getLogger("sluicegate.supervisor")

READY_TIMEOUT = 30.0  # a worker must be serving this soon after it was started
CRASH_WINDOW = 10.0  # more than CRASH_LIMIT unexpected exits in this many seconds: pause before restarting
CRASH_LIMIT = 5
KILL_GRACE = 5.0  # after shutdown_timeout, how long a worker may take to exit before SIGKILL


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    generation: int
    started: float
    ready_r: int
    ready: bool = False
    accepting_stopped: bool = False  # it said 'D' (or exited): no longer takes new connections
    retiring: bool = False  # told to drain (reload or shutdown); its exit is expected

    @property
    def pid(self) -> int:
        return self.proc.pid


class Supervisor(Instance):
    def __init__(self, config_path: str, text: str, settings: SupervisorView, sock: socket.socket,
                 admin_sock: socket.socket | None, workers: int) -> None:
        super().__init__(config_path, text, settings, sock, admin_sock)
        self.n_workers = workers
        self.workers: list[Worker] = []
        self.crashes: list[float] = []
        self._stop_event: asyncio.Event | None = None

    # ---- generations ------------------------------------------------------------------------------------

    def _spawn(self, gen: Generation) -> Worker:
        ready_r, ready_w = os.pipe()
        fd = self.sock.fileno()
        argv = [sys.executable, "-m", "sluicegate.server.worker", "--fd", str(fd), "--ready-fd", str(ready_w),
                "--config", str(gen.snapshot), "--label", self.config_path]
        proc = subprocess.Popen(argv, pass_fds=(fd, ready_w), close_fds=True)
        os.close(ready_w)
        os.set_blocking(ready_r, False)
        worker = Worker(proc, gen.number, time.time(), ready_r)
        self.workers.append(worker)
        return worker

    def _poll_ready(self, worker: Worker) -> None:
        """Read the worker's pipe: 'R' = serving, 'D' = stopped accepting, EOF = gone."""
        while worker.ready_r >= 0:
            try:
                data = os.read(worker.ready_r, 1)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if data == b"R":
                worker.ready = True
                continue
            worker.accepting_stopped = True
            os.close(worker.ready_r)
            worker.ready_r = -1

    async def _wait_ready(self, batch: list[Worker]) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            for w in batch:
                self._poll_ready(w)
            if all(w.ready for w in batch):
                return True
            if any(w.proc.poll() is not None for w in batch):
                return False
            await asyncio.sleep(0.02)
        return False

    # ---- main loop --------------------------------------------------------------------------------------

    def run(self) -> int:
        self.write_pid()
        try:
            return asyncio.run(self._main())
        finally:
            self.cleanup()

    async def _main(self) -> int:
        loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self._request_reload)
        admin = await self.start_admin(self.admin_sock)
        self.prober.start()
        batch = [self._spawn(self.gen) for _ in range(self.n_workers)]
        if not await self._wait_ready(batch):
            log.error("sluicegate: workers failed to start (see above)")
            await self._terminate(batch, timeout=KILL_GRACE)
            await self.prober.stop()
            if admin is not None:
                await admin.close()
            return 1
        self.serving = True
        log.info("sluicegate %s serving on %s with %d worker(s) (pid %d)%s", __version__, self.listening(),
                 self.n_workers, os.getpid(),
                 f"; admin on http://{self.gen.settings.admin_listen}" if admin else "")
        while not self._stop_event.is_set():
            self._reap()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    await self._stop_event.wait()
        await self._shutdown()
        await self.prober.stop()
        if admin is not None:
            await admin.close()
        return self.exit_code

    def _request_stop(self, sig: int) -> None:
        if self.stopping:
            if sig == signal.SIGINT:  # a second Ctrl+C: no more waiting
                for w in self.workers:
                    with contextlib.suppress(ProcessLookupError):
                        w.proc.kill()
            return
        log.info("sluicegate: %s received: draining (up to %gs)", signal.Signals(sig).name,
                 self.gen.settings.shutdown_timeout)
        self.stopping = True
        assert self._stop_event is not None
        self._stop_event.set()

    def _reap(self) -> None:
        for w in list(self.workers):
            self._poll_ready(w)
            code = w.proc.poll()
            if code is None:
                continue
            self.workers.remove(w)
            if w.ready_r >= 0:
                os.close(w.ready_r)
            with contextlib.suppress(Exception):
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(w.pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]
            if w.retiring:
                if code != 0:
                    log.warning("worker %d (generation %d) exited with %s after draining", w.pid, w.generation,
                                _describe(code))
                    self.exit_code = 1
                else:
                    log.info("worker %d (generation %d) drained and exited", w.pid, w.generation)
                continue
            log.error("worker %d exited unexpectedly (%s); starting a replacement", w.pid, _describe(code))
            now = time.monotonic()
            self.crashes = [t for t in self.crashes if now - t < CRASH_WINDOW] + [now]
            self.restarts += 1
            if len(self.crashes) > CRASH_LIMIT:
                log.error("workers are crashing repeatedly: waiting 1s before the next restart")
                asyncio.get_running_loop().call_later(1.0, self._respawn)
            else:
                self._spawn(self.gen)

    def _respawn(self) -> None:
        if not self.stopping:
            self._spawn(self.gen)

    # ---- reload -----------------------------------------------------------------------------------------

    async def reload(self) -> bool:
        checked = await self.checked_reload()
        if checked is None:
            return False
        text, settings = checked
        old = self.gen.settings
        gen = self._generation(self.gen.number + 1, text, settings)
        count = settings.workers if settings.workers != old.workers else self.n_workers
        batch = [self._spawn(gen) for _ in range(count)]
        if not await self._wait_ready(batch):
            await self._terminate(batch, timeout=KILL_GRACE)
            for w in batch:
                if w in self.workers:
                    self.workers.remove(w)
            return self.refuse("the new configuration's workers failed to start (see above)")
        previous = [w for w in self.workers if w.generation != gen.number and not w.retiring]
        for w in previous:
            w.retiring = True
            with contextlib.suppress(ProcessLookupError):
                w.proc.send_signal(signal.SIGTERM)
        # The swap is done when the old generation no longer accepts: from then on every new connection
        # lands on a new worker (in-flight requests finish on the old config).
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            for w in previous:
                self._poll_ready(w)
            if all(w.accepting_stopped or w.proc.poll() is not None for w in previous):
                break
            await asyncio.sleep(0.01)
        self.n_workers = count
        self.reloaded(gen)
        log.info("sluicegate: reloaded: generation %d (config %s) serving; %d old worker(s) draining",
                 gen.number, gen.config_hash, len(previous))
        return True

    # ---- shutdown ---------------------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        # Stop accepting: our copy of the listening socket is the last one once the workers close theirs.
        with contextlib.suppress(OSError):
            self.sock.close()
        timeout = self.gen.settings.shutdown_timeout
        await self._terminate(list(self.workers), timeout=timeout + KILL_GRACE)

    async def _terminate(self, batch: list[Worker], timeout: float) -> None:
        for w in batch:
            w.retiring = True
            with contextlib.suppress(ProcessLookupError):
                w.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(w.proc.poll() is None for w in batch) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for w in batch:
            if w.proc.poll() is None:
                log.error("worker %d did not exit in time: killed", w.pid)
                w.proc.kill()
                w.proc.wait()
        self._reap()

    # ---- admin state ------------------------------------------------------------------------------------

    def _alive(self) -> bool:
        return any(w.ready and w.proc.poll() is None for w in self.workers)

    def _rows(self) -> list[dict[str, Any]]:
        return [{"pid": w.pid, "generation": w.generation, "ready": w.ready and w.proc.poll() is None,
                 "draining": w.retiring, "uptime_s": round(time.time() - w.started, 3)} for w in self.workers]


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"
