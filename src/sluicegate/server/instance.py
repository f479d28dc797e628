"""What both ways of serving share: the supervisor (``server.supervisor``, N worker processes) and one process
(``server.single``, ``[server] supervisor = false``: the app served by the process ``sluicegate serve`` started).

Owns: the runtime directory (config snapshots, the metric files of ``PROMETHEUS_MULTIPROC_DIR``, set here before
any app metric exists); config generations and their hash; the pid file; the admin listener's state
(``server.admin.AdminState``: liveness, readiness from ``observability.probe``, ``/status``, ``/metrics`` with the
instance's own series, named ``sluicegate_supervisor_*`` in both modes); the first half of a reload (re-read
the file, have it checked by a short-lived child, ``server.configcheck``, warn about what needs a restart,
refuse with the error) and its bookkeeping.
Must not know how requests are served (worker processes or this one): subclasses say what serves through
``_rows()`` (one dict per serving process) and ``_alive()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sluicegate import __version__
from sluicegate.observability.probe import Prober
from sluicegate.server.admin import AdminServer
from sluicegate.server.configcheck import check_in_child_async
from sluicegate.server.supervisor_view import SupervisorView

log = logging.getLogger("sluicegate.supervisor")


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


class _InstanceMetrics:
    """The instance's own series, read from its state at scrape time (never through metric value objects,
    which in one process are the app's multi-process values)."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        inst = self.instance
        yield GaugeMetricFamily("sluicegate_supervisor_workers", "Worker processes running",
                                value=sum(1 for row in inst._rows() if not row["draining"]))
        yield CounterMetricFamily("sluicegate_supervisor_worker_restarts", "Workers replaced after an unexpected "
                                  "exit", value=inst.restarts)
        reloads = CounterMetricFamily("sluicegate_supervisor_reloads", "Config reloads by result (ok, refused)",
                                      labels=["result"])
        for result, count in inst.reloads.items():
            reloads.add_metric([result], count)
        yield reloads
        yield GaugeMetricFamily("sluicegate_supervisor_config_generation", "Config generation serving",
                                value=inst.gen.number)
        up = GaugeMetricFamily("sluicegate_backend_up", "Last probe of each backend (1 reachable, 0 not)",
                               labels=["backend"])
        for b in list(inst.prober.backends):
            if b.probed and b.up is not None:
                up.add_metric([b.name], 1 if b.up else 0)
        yield up


class Instance:
    """One running ``sluicegate serve``: its config generation, runtime directory, prober and admin state."""

    mode = "supervisor"

    def __init__(self, config_path: str, text: str, settings: SupervisorView, sock: socket.socket,
                 admin_sock: socket.socket | None, *, runtime: Path | None = None, generation: int = 1,
                 started: float | None = None, reloads: dict[str, int] | None = None) -> None:
        from prometheus_client import CollectorRegistry

        self.config_path = config_path
        self.sock = sock
        self.admin_sock = admin_sock
        self.listen_port = sock.getsockname()[1]
        self.runtime = runtime or Path(tempfile.mkdtemp(prefix="sluicegate-", dir=runtime_base()))
        self.metrics_dir = self.runtime / "metrics"
        self.metrics_dir.mkdir(exist_ok=True)
        if settings.metrics:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(self.metrics_dir)  # before any app metric exists
        else:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.gen = self._generation(generation, text, settings)
        self.started = started or time.time()
        self.stopping = False
        self.serving = False  # the first generation is ready
        self.exit_code = 0
        self.restarts = 0
        self.reloads: dict[str, int] = dict(reloads or {})
        self._reloading = False
        self.prober = Prober(settings.backends, settings.probe_interval, settings.probe_timeout)
        self.registry = CollectorRegistry()
        self.registry.register(_InstanceMetrics(self))

    # ---- hooks of the serving mode ----------------------------------------------------------------------

    def _rows(self) -> list[dict[str, Any]]:
        """One row per serving process: pid, generation, ready, draining, uptime_s."""
        raise NotImplementedError

    def _alive(self) -> bool:
        """At least one process answers requests (draining ones count)."""
        raise NotImplementedError

    async def reload(self) -> bool:
        raise NotImplementedError

    # ---- generations, pid file, runtime directory ---------------------------------------------------------

    def _generation(self, number: int, text: str, settings: SupervisorView) -> Generation:
        snapshot = self.runtime / f"config-{number}.toml"
        snapshot.write_text(text, encoding="utf-8")
        return Generation(number, settings, text, snapshot, config_hash(text, os.environ))

    def write_pid(self) -> None:
        if self.gen.settings.pid_file:
            Path(self.gen.settings.pid_file).write_text(f"{os.getpid()}\n")

    def cleanup(self) -> None:
        """At exit: the runtime directory and the pid file go."""
        shutil.rmtree(self.runtime, ignore_errors=True)
        if self.gen.settings.pid_file:
            with contextlib.suppress(OSError):
                Path(self.gen.settings.pid_file).unlink()

    async def start_admin(self, sock: socket.socket | None) -> AdminServer | None:
        if sock is None:
            return None
        admin = AdminServer(self, sock, self._teams_api())
        await admin.start()
        return admin

    def _teams_api(self) -> Any:
        """The teams key/usage API under /v1/ on the admin listener. Off (404 saying how to turn it on) unless
        a token is configured; then the inference settings it needs are loaded, once."""
        from sluicegate.teams.admin_api import TeamsAdminApi, api_off

        view = self.gen.settings
        if not (view.teams_token_env and os.environ.get(view.teams_token_env)) and not view.teams_token_file:
            return api_off(view.teams_token_env)
        from sluicegate.config import load_settings_text

        settings = load_settings_text(self.gen.text, self.config_path)  # validated by the child already
        return TeamsAdminApi(settings.inference).handle

    def listening(self) -> str:
        s = self.gen.settings
        host = f"[{s.host}]" if ":" in s.host else s.host
        return f"{'https' if s.tls_cert else 'http'}://{host}:{self.listen_port}"

    # ---- reload -----------------------------------------------------------------------------------------

    def _request_reload(self) -> None:
        if self.stopping:
            return
        if self._reloading:
            log.warning("sluicegate: reload already in progress; SIGHUP ignored")
            return
        self._reloading = True
        task = asyncio.get_running_loop().create_task(self.reload())
        task.add_done_callback(lambda _t: setattr(self, "_reloading", False))

    async def checked_reload(self) -> tuple[str, SupervisorView] | None:
        """The file re-read and checked by a child: its text and view, or None (refused, logged)."""
        log.info("sluicegate: reloading %s", self.config_path)
        try:
            text = Path(self.config_path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.refuse(f"{self.config_path}: cannot read: {getattr(exc, 'strerror', None) or exc}")
            return None
        # validated, built once and its TLS files loaded (the new generation loads the certificate files
        # afresh: renewed certificates) in a short-lived child (server.configcheck), never here
        checked = await check_in_child_async(text, self.config_path)
        if checked.view is None:
            self.refuse(checked.problem)
            return None
        settings, old = checked.view, self.gen.settings
        if settings.tls_cert != old.tls_cert:
            log.warning("reload: TLS switched on/off or to other files: the new generation serves it, same port")
        if old.host != settings.host:
            log.warning("reload: server.host changed: needs a restart; the listener keeps its old value")
        if old.port != settings.port and old.port != self.listen_port:
            log.warning("reload: server.port changed: needs a restart; the listener keeps its old value")
        if old.admin_listen != settings.admin_listen:
            log.warning("reload: admin.listen changed: needs a restart; the admin listener keeps its address")
        if old.supervisor != settings.supervisor:
            log.warning("reload: server.supervisor changed: needs a restart; the %s mode stays", self.mode)
        return text, settings

    def reloaded(self, gen: Generation) -> None:
        """The new generation serves: bookkeeping and the prober's new targets."""
        self.gen = gen
        settings = gen.settings
        self.prober.configure(settings.backends, settings.probe_interval, settings.probe_timeout)
        self.prober.poke()
        self.reloads["ok"] = self.reloads.get("ok", 0) + 1

    def refuse(self, why: str) -> bool:
        self.reloads["refused"] = self.reloads.get("refused", 0) + 1
        log.error("reload refused, generation %d keeps serving:\n%s", self.gen.number, why)
        return False

    # ---- admin state ------------------------------------------------------------------------------------

    def live(self) -> bool:
        return self.serving and self._alive()

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        now = time.monotonic()
        backends = [b.view(now) for b in self.prober.backends]
        reasons = []
        if self.stopping:
            reasons.append("shutting down")
        if not any(row["ready"] and not row["draining"] for row in self._rows()):
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
            "mode": self.mode,  # "supervisor" or "one-process"
            "uptime_s": round(time.time() - self.started, 3),
            "config": {"path": self.config_path, "hash": self.gen.config_hash, "generation": self.gen.number,
                       "loaded_at": _iso(self.gen.loaded_at)},
            "config_hash": self.gen.config_hash,
            "listen": f"{s.host}:{self.listen_port}" if not self.stopping else None,
            "admin": s.admin_listen,
            "faces": {"publisher": s.publisher, "inference": s.inference},
            "workers": self._rows(),
            "worker_restarts": self.restarts,
            "backends": [b.view(now) for b in self.prober.backends],
            "shutting_down": self.stopping,
        }
        try:
            from sluicegate import buildinfo  # type: ignore[attr-defined]

            out["fast_paths"] = buildinfo.fast_paths(load=False)  # the build's choice; nothing imported here
        except ImportError:
            out["fast_paths"] = None
        return out

    def metrics(self) -> bytes | None:
        if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            return None  # [admin] metrics = false
        from sluicegate.observability import metrics  # not at import: it creates the app's metrics

        return metrics.render(self.registry)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
