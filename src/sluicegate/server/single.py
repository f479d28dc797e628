"""One process (``[server] supervisor = false``): ``sluicegate serve`` itself runs the app on the listening socket.

For containers (Kubernetes, systemd with ``Restart=``): one process per container, restarted by the
orchestrator; no supervisor, no worker process. Owns:
  * building the app here (``server.worker.build_app``: metric values written as a worker writes them,
    ``observability.mpvalue``, so the admin ``/metrics`` renders them exactly as the supervisor does) and
    serving it with ``[server] http_core`` (``server.worker.serving_core``) on the same event loop as the admin
    listener and the prober (``server.instance``: same paths, same metric names as the supervisor's);
  * shutdown (SIGTERM, SIGINT): stop accepting, drain up to ``[server] shutdown_timeout``, cut the rest;
    exit code 1 if any request was cut (as the supervisor), else 0. A crash exits non-zero: there is nothing
    to restart the app but the orchestrator;
  * reload (SIGHUP, ``sluicegate reload``): the new file checked by a short-lived child
    (``server.configcheck``): refused, the running config keeps serving; accepted, stop accepting, let
    in-flight requests finish (bounded by ``shutdown_timeout``), then ``exec`` ``sluicegate serve`` again in
    this process (same pid) with the listening sockets left open (``HANDOVER``): connections that arrive
    meanwhile wait in the kernel's accept queue and are served by the new image, which loads the checked
    snapshot without checking it again. Counters continue (same pid, same metric files).
Must not know the faces, nor what the config says beyond ``server.supervisor_view``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from sluicegate import __version__
from sluicegate.server.instance import Generation, Instance
from sluicegate.server.run import HANDOVER
from sluicegate.server.supervisor_view import SupervisorView

log = logging.getLogger("sluicegate.supervisor")

EXIT_FAILED = 1
# Blocked (held pending, kept across exec) from the start, and from the end of a drain that re-executes, until
# this image has a handler for them: a SIGTERM or SIGHUP that arrives meanwhile is served, never fatal.
HELD = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


class OneProcess(Instance):
    mode = "one-process"

    def __init__(self, config_path: str, text: str, settings: SupervisorView, sock: socket.socket,
                 admin_sock: socket.socket | None, **kw: Any) -> None:
        # before Instance imports prometheus_client: its exposition (http.server, wsgiref, email...) loads at
        # the first scrape of the admin /metrics (``observability.promlazy``), as a supervised worker's never
        # does; a process never scraped does not pay it (~2.5 MiB RSS, docs/operations.md)
        from sluicegate.server import lean

        lean.install()
        super().__init__(config_path, text, settings, sock, admin_sock, **kw)
        self.server: Any = None  # server.h1.serve.NativeServer (or its uvicorn twin), once built
        self.next_gen: Generation | None = None  # a checked reload: re-exec with it after the drain
        self.core = ""  # [server] http_core serving

    def _rows(self) -> list[dict[str, Any]]:
        ready = self.server is not None and self.server.started
        # during a reload's drain it stays ready: new connections wait in the listen queue for the new image
        return [{"pid": os.getpid(), "generation": self.gen.number, "ready": ready, "draining": self.stopping,
                 "uptime_s": round(time.time() - self.started, 3)}]

    def _alive(self) -> bool:
        return self.server is not None and self.server.started

    # ---- run --------------------------------------------------------------------------------------------

    def run(self) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, HELD)  # a re-executed image has them blocked already
        self.write_pid()
        try:
            code = self._serve()
            if self.next_gen is not None and not self.stopping:
                self._reexec(self.next_gen)  # returns only when exec failed
                code = EXIT_FAILED
            return code
        finally:
            self.cleanup()

    def _serve(self) -> int:
        import uvloop

        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # as in a worker: our lines say it all
        from sluicegate.config import ConfigError
        from sluicegate.server.tls import TlsProblem
        from sluicegate.server.worker import build_app, serving_core

        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:  # a re-executed image: the last one's live gauges go
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid(), str(self.metrics_dir))  # type: ignore[no-untyped-call]
        try:
            settings, app = build_app(self.gen.text, self.config_path)
            self.server = serving_core(app, settings)
            self.core = settings.server.http_core
        except (ConfigError, ValueError, OSError, TlsProblem) as exc:
            log.error("sluicegate: cannot start: %s", exc)
            return EXIT_FAILED
        for sig in (signal.SIGINT, signal.SIGTERM):  # until the loop's own handlers are installed
            signal.signal(sig, self.server.early_signal)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})  # pending: drain once up
        return uvloop.run(self._main())

    async def _main(self) -> int:
        loop = asyncio.get_running_loop()
        server = self.server
        admin = await self.start_admin(self.admin_sock.dup() if self.admin_sock is not None else None)
        self.prober.start()
        # the core closes the socket it is given when it stops accepting: ours stays open for a re-exec
        serving = loop.create_task(server.serve(self.sock.dup()))
        while not server.started and not serving.done():
            await asyncio.sleep(0.01)
        if server.started:
            for sig in (signal.SIGTERM, signal.SIGINT):  # after the core's own: ours also say "shutting down"
                loop.add_signal_handler(sig, self._request_stop, sig)
            loop.add_signal_handler(signal.SIGHUP, self._request_reload)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})  # one sent during the start reloads now
            self.serving = True
            log.info("sluicegate %s serving on %s in one process (pid %d, generation %d), %s core%s", __version__,
                     self.listening(), os.getpid(), self.gen.number, self.core,
                     f"; admin on http://{self.gen.settings.admin_listen}" if admin else "")
        code = await serving
        if self.next_gen is not None and not self.stopping:
            signal.pthread_sigmask(signal.SIG_BLOCK, HELD)  # until the new image handles them
        if not self.serving:
            log.error("sluicegate: the app failed to start (see above)")
        await self.prober.stop()
        if admin is not None:
            await admin.close()
        return 0 if code == 0 else EXIT_FAILED

    def _request_stop(self, sig: int) -> None:
        if self.stopping:
            if sig == signal.SIGINT:  # a second Ctrl+C: no more waiting
                self.server.stop()
            return
        log.info("sluicegate: %s received: draining (up to %gs)", signal.Signals(sig).name,
                 self.gen.settings.shutdown_timeout)
        self.stopping = True
        for sock in (self.sock, self.admin_sock):  # refuse new connections at once (no handover now)
            if sock is not None:
                sock.close()
        if self.next_gen is None:  # else a reload's drain is running: it goes on, then no re-exec
            self.server.stop()

    # ---- reload -----------------------------------------------------------------------------------------

    async def reload(self) -> bool:
        if self.next_gen is not None:
            log.warning("sluicegate: generation %d starts after the drain; SIGHUP ignored", self.next_gen.number)
            return False
        checked = await self.checked_reload()
        if checked is None or self.stopping:
            return False
        text, settings = checked
        self.next_gen = self._generation(self.gen.number + 1, text, settings)
        self.server.stop()
        log.info("sluicegate: reload checked: draining in-flight requests (up to %gs), then generation %d "
                 "starts in this process (pid %d); new connections wait in the listen queue",
                 self.gen.settings.shutdown_timeout, self.next_gen.number, os.getpid())
        return True

    def _reexec(self, gen: Generation) -> None:
        """Replace this process's image with ``sluicegate serve`` taking over the sockets and ``gen``."""
        fds = [self.sock.fileno(), self.admin_sock.fileno() if self.admin_sock is not None else -1]
        for fd in fds:
            if fd >= 0:
                os.set_inheritable(fd, True)
        reloads = dict(self.reloads)
        reloads["ok"] = reloads.get("ok", 0) + 1
        handover = {"fds": fds, "runtime": str(self.runtime), "generation": gen.number,
                    "snapshot": str(gen.snapshot), "started": self.started, "reloads": reloads}
        env = {**os.environ, HANDOVER: json.dumps(handover)}
        argv = [sys.executable, "-m", "sluicegate", "serve", "--config", self.config_path]
        log.info("sluicegate: drained; starting generation %d (config %s)", gen.number, gen.config_hash)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.execve(sys.executable, argv, env)
        except OSError as exc:
            log.error("sluicegate: cannot re-execute %s: %s; exiting", sys.executable, exc.strerror or exc)


def resume(config_path: str) -> int:
    """The image ``_reexec`` started: take over the sockets and the checked generation, then serve."""
    from sluicegate.server import lean

    lean.install()  # before the config model and prometheus_client, as ``OneProcess.__init__`` does
    from sluicegate.config import ConfigError, load_settings_text
    from sluicegate.server.configcheck import view_of

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    state = json.loads(os.environ.pop(HANDOVER))
    public, admin = (socket.socket(fileno=fd) if fd >= 0 else None for fd in state["fds"])
    assert public is not None
    for sock in (public, admin):
        if sock is not None:
            sock.set_inheritable(False)
    try:
        text = Path(state["snapshot"]).read_text(encoding="utf-8")
        view = view_of(load_settings_text(text, config_path))
    except (OSError, ConfigError, ValueError) as exc:  # checked before the exec: only if the file went away
        log.error("sluicegate: cannot resume generation %s: %s", state["generation"], exc)
        return EXIT_FAILED
    return OneProcess(config_path, text, view, public, admin, runtime=Path(state["runtime"]),
                      generation=int(state["generation"]), started=float(state["started"]),
                      reloads=state["reloads"]).run()
