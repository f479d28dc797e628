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
    a private directory set here before any worker starts) and readiness from ``observability.probe``.
Holds no app and no config model: what it needs of a config is ``server.supervisor_view`` (plain data made
by the child), so the process that lives as long as the server stays small (docs/operations.md, footprint).
Must not know what the workers do with requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from sluicegate import __version__
from sluicegate.observability import metrics
from sluicegate.observability.probe import Prober
from sluicegate.server.admin import AdminServer
from sluicegate.server.configcheck import check_buildable, check_in_child_async
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


@dataclass
class Generation:
    number: int
    settings: SupervisorView
    text: str
    snapshot: Path
    config_hash: str
    loaded_at: float = field(default_factory=time.time)


def config_hash(text: str, environ: dict[str, str] | os._Environ[str]) -> str:
    h = hashlib.sha256(text.encode())
    for name in sorted(k for k in environ if k.startswith("SLUICEGATE__")):
        h.update(f"\0{name}={environ[name]}".encode())
    return h.hexdigest()[:16]


def runtime_base() -> str | None:
    """Where the runtime directory goes: memory-backed when possible. The metric files are mmap'ed and
    written on every request; on a disk file system each write after a writeback pass faults into the file
    system (page_mkwrite), which cost more than the metrics themselves (sluicegate bench observability)."""
    chosen = os.environ.get("SLUICEGATE_RUNTIME_DIR")
    if chosen:
        return chosen
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return None  # the system temp dir


class Supervisor:
    def __init__(self, config_path: str, text: str, settings: SupervisorView, sock: socket.socket,
                 admin_sock: socket.socket | None, workers: int) -> None:
        self.config_path = config_path
        self.sock = sock
        self.admin_sock = admin_sock
        self.n_workers = workers
        self.runtime = Path(tempfile.mkdtemp(prefix="sluicegate-", dir=runtime_base()))
        self.metrics_dir = self.runtime / "metrics"
        self.metrics_dir.mkdir()
        if settings.metrics:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(self.metrics_dir)  # before any worker exists
        else:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.gen = self._generation(1, text, settings)
        self.workers: list[Worker] = []
        self.started = time.time()
        self.stopping = False
        self.serving = False  # the first generation is ready
        self.exit_code = 0
        self.crashes: list[float] = []
        self.restarts = 0
        self._reloading = False
        self._stop_event: asyncio.Event | None = None
        self.prober = Prober(settings.backends, settings.probe_interval, settings.probe_timeout)
        self.registry = CollectorRegistry()
        self.m_workers = Gauge("sluicegate_supervisor_workers", "Worker processes running", registry=self.registry)
        self.m_restarts = Counter("sluicegate_supervisor_worker_restarts", "Workers replaced after an "
                                  "unexpected exit", registry=self.registry)
        self.m_reloads = Counter("sluicegate_supervisor_reloads", "Config reloads by result (ok, refused)",
                                 ["result"], registry=self.registry)
        self.m_generation = Gauge("sluicegate_supervisor_config_generation", "Config generation serving",
                                  registry=self.registry)
        self.m_backend = Gauge("sluicegate_backend_up", "Last probe of each backend (1 reachable, 0 not)",
                               ["backend"], registry=self.registry)
        self.m_generation.set(1)

    # ---- generations ------------------------------------------------------------------------------------

    def _generation(self, number: int, text: str, settings: SupervisorView) -> Generation:
        snapshot = self.runtime / f"config-{number}.toml"
        snapshot.write_text(text, encoding="utf-8")
        return Generation(number, settings, text, snapshot, config_hash(text, os.environ))

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
        pid_file = self.gen.settings.pid_file
        if pid_file:
            Path(pid_file).write_text(f"{os.getpid()}\n")
        try:
            return asyncio.run(self._main())
        finally:
            shutil.rmtree(self.runtime, ignore_errors=True)
            if pid_file:
                with contextlib.suppress(OSError):
                    Path(pid_file).unlink()

    async def _main(self) -> int:
        loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self._request_reload)
        admin: AdminServer | None = None
        if self.admin_sock is not None:
            admin = AdminServer(self, self.admin_sock, self._teams_api())
            await admin.start()
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
        srv = self.gen.settings
        host = f"[{srv.host}]" if ":" in srv.host else srv.host
        log.info("sluicegate %s serving on %s://%s:%d with %d worker(s) (pid %d)%s", __version__,
                 "https" if srv.tls_cert else "http", host, self.sock.getsockname()[1],
                 self.n_workers,
                 os.getpid(), f"; admin on http://{srv.admin_listen}" if admin else "")
        while not self._stop_event.is_set():
            self._reap()
            self._update_gauges()
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

    def _request_reload(self) -> None:
        if self.stopping:
            return
        if self._reloading:
            log.warning("sluicegate: reload already in progress; SIGHUP ignored")
            return
        self._reloading = True
        task = asyncio.get_running_loop().create_task(self.reload())
        task.add_done_callback(lambda _t: setattr(self, "_reloading", False))

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
            self.m_restarts.inc()
            if len(self.crashes) > CRASH_LIMIT:
                log.error("workers are crashing repeatedly: waiting 1s before the next restart")
                asyncio.get_running_loop().call_later(1.0, self._respawn)
            else:
                self._spawn(self.gen)

    def _respawn(self) -> None:
        if not self.stopping:
            self._spawn(self.gen)

    def _update_gauges(self) -> None:
        self.m_workers.set(sum(1 for w in self.workers if not w.retiring))
        for b in self.prober.backends:
            if b.probed and b.up is not None:
                self.m_backend.labels(b.name).set(1 if b.up else 0)

    # ---- reload -----------------------------------------------------------------------------------------

    async def reload(self) -> bool:
        log.info("sluicegate: reloading %s", self.config_path)
        try:
            text = Path(self.config_path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return self._refuse(f"{self.config_path}: cannot read: {getattr(exc, 'strerror', None) or exc}")
        # validated, built once and its TLS files loaded (new workers load the certificate files afresh:
        # renewed certificates) in a short-lived child (server.configcheck), never here
        checked = await check_in_child_async(text, self.config_path)
        if checked.view is None:
            return self._refuse(checked.problem)
        settings, old = checked.view, self.gen.settings
        if settings.tls_cert != old.tls_cert:
            log.warning("reload: TLS switched on/off or to other files: the new workers serve it, same port")
        if old.host != settings.host:
            log.warning("reload: server.host changed: needs a restart; the listener keeps its old value")
        if old.port != settings.port and old.port != self.sock.getsockname()[1]:
            log.warning("reload: server.port changed: needs a restart; the listener keeps its old value")
        if old.admin_listen != settings.admin_listen:
            log.warning("reload: admin.listen changed: needs a restart; the admin listener keeps its address")
        gen = self._generation(self.gen.number + 1, text, settings)
        count = settings.workers if settings.workers != old.workers else self.n_workers
        batch = [self._spawn(gen) for _ in range(count)]
        if not await self._wait_ready(batch):
            await self._terminate(batch, timeout=KILL_GRACE)
            for w in batch:
                if w in self.workers:
                    self.workers.remove(w)
            return self._refuse("the new configuration's workers failed to start (see above)")
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
        self.gen = gen
        self.n_workers = count
        self.prober.configure(settings.backends, settings.probe_interval, settings.probe_timeout)
        self.prober.poke()
        self.m_reloads.labels("ok").inc()
        self.m_generation.set(gen.number)
        log.info("sluicegate: reloaded: generation %d (config %s) serving; %d old worker(s) draining",
                 gen.number, gen.config_hash, len(previous))
        return True

    def _teams_api(self) -> Any:
        """The teams key/usage API under /v1/ on the admin listener. Off (404 saying how to turn it on) unless
        a token is configured; then the supervisor loads the inference settings it needs, once."""
        from sluicegate.teams.admin_api import TeamsAdminApi, api_off

        view = self.gen.settings
        if not (view.teams_token_env and os.environ.get(view.teams_token_env)) and not view.teams_token_file:
            return api_off(view.teams_token_env)
        from sluicegate.config import load_settings_text

        settings = load_settings_text(self.gen.text, self.config_path)  # validated by the child already
        return TeamsAdminApi(settings.inference).handle

    def _refuse(self, why: str) -> bool:
        self.m_reloads.labels("refused").inc()
        log.error("reload refused, generation %d keeps serving:\n%s", self.gen.number, why)
        return False

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

    def live(self) -> bool:
        """At least one worker is up and serving (draining ones count: they still answer their requests)."""
        return self.serving and any(w.ready and w.proc.poll() is None for w in self.workers)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        now = time.monotonic()
        serving = [w for w in self.workers if w.ready and not w.retiring and w.proc.poll() is None]
        backends = [b.view(now) for b in self.prober.backends]
        reasons = []
        if self.stopping:
            reasons.append("shutting down")
        if not serving:
            reasons.append("no worker is serving")
        state = {b.name: b for b in self.prober.backends}
        origin = state.get("origin")
        if origin is not None and origin.up is None:
            reasons.append("origin: not probed yet")
        elif origin is not None and not origin.up:
            reasons.append(f"origin: {origin.error}")
        # page routes' backends gate readiness like the origin; an asset backend down is degraded, not down
        for name in self.gen.settings.page_routes:
            b = state.get(f"route:{name}")
            if b is not None and not b.up:
                reasons.append(f"route:{name}: {b.error or 'not probed yet'}")
        # A provider that is down matters when a model has no other reachable target: with a fallback left,
        # the instance still serves that model, and taking every replica out would turn degraded into down.
        for model, providers in self.gen.settings.models:
            views = [state.get(f"provider:{p}") for p in providers]
            if any(v is not None and v.up for v in views):
                continue
            why = "; ".join(f"{v.name}: {v.error or 'not probed yet'}" for v in views if v is not None)
            reasons.append(f"model {model}: no reachable target ({why})")
        return not reasons, {"ready": not reasons, "reasons": reasons, "backends": backends}

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        s = self.gen.settings
        out: dict[str, Any] = {
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started, 3),
            "config": {"path": self.config_path, "hash": self.gen.config_hash, "generation": self.gen.number,
                       "loaded_at": _iso(self.gen.loaded_at)},
            "config_hash": self.gen.config_hash,
            "listen": f"{s.host}:{self.sock.getsockname()[1]}" if not self.stopping else None,
            "admin": s.admin_listen,
            "faces": {"publisher": s.publisher, "inference": s.inference},
            "workers": [{"pid": w.pid, "generation": w.generation, "ready": w.ready, "draining": w.retiring,
                         "uptime_s": round(time.time() - w.started, 3)} for w in self.workers],
            "worker_restarts": self.restarts,
            "backends": [b.view(now) for b in self.prober.backends],
            "shutting_down": self.stopping,
        }
        try:
            from sluicegate import buildinfo  # type: ignore[attr-defined]

            out["fast_paths"] = buildinfo.fast_paths()
        except ImportError:
            out["fast_paths"] = None
        return out

    def metrics(self) -> bytes | None:
        if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            return None  # [admin] metrics = false
        self._update_gauges()
        return metrics.render(self.registry)


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
