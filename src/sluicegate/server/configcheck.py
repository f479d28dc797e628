"""Config validation and the checks only a built app can make, in a short-lived child: the supervisor holds
neither an app nor the config model.

A config that validates can still fail when the app is built (a secret named by ``*_env`` unset, a route's
engine not installed, a bad key file): ``check_buildable`` builds the app once and throws it away. Building
it in the supervisor imported every subsystem the config names (publisher, pipeline, images, inference,
teams, first-party...) and kept them resident for the supervisor's life although it never serves a request
(docs/operations.md: supervisor footprint). ``check_in_child`` runs the same check in
``python -m sluicegate.server.configcheck``: the exact config text on stdin; the config validated, the app
built, the TLS files loaded (a new generation's workers load them afresh); on success the supervisor's view
of the config (``server.supervisor_view``, JSON) on stdout, exit code 0; else the error text as the
in-process check would print it on stderr, exit code 2 (config, ``file:line: key: ...``) or 3 (a start-up
problem: an unusable certificate). The child inherits the environment (``SLUICEGATE__*`` overrides,
secrets) like a worker does, but never the metrics directory.
Must not know what the supervisor does with the view, nor anything of the workers.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sluicegate.server.supervisor_view import ProbeTarget, SupervisorView

if TYPE_CHECKING:
    from sluicegate.config import Settings

CHECK_TIMEOUT = 60.0  # a fresh interpreter importing the app: seconds on a loaded machine, never minutes
EXIT_NOT_BUILDABLE = 2
EXIT_STARTUP = 3


@dataclass(frozen=True)
class Checked:
    view: SupervisorView | None  # None: refused
    problem: str = ""  # the error text, as the in-process check prints it
    startup: bool = False  # a start-up problem (TLS files), not the config's text


def view_of(settings: Settings) -> SupervisorView:
    """The supervisor's view of ``settings`` (made in the child, from the typed model)."""
    from sluicegate.config.types import parse_listen
    from sluicegate.observability.probe import backends

    srv, adm, inf = settings.server, settings.admin, settings.inference
    admin_host, admin_port = parse_listen(adm.listen) if adm.listen else ("", 0)
    routes = settings.publisher.routes if settings.publisher.enabled else []
    return SupervisorView(
        host=srv.host, port=srv.port, workers=srv.workers, supervisor=srv.supervisor, pid_file=srv.pid_file or "",
        shutdown_timeout=float(srv.shutdown_timeout), tls_cert=srv.tls.cert_file or srv.tls_certfile,
        admin_listen=adm.listen or "", admin_host=admin_host, admin_port=admin_port, metrics=adm.metrics,
        probe_interval=float(adm.probe_interval), probe_timeout=float(adm.probe_timeout),
        publisher=settings.publisher.enabled, inference=inf.enabled,
        backends=tuple(ProbeTarget(b.name, b.host, b.port, b.probed) for b in backends(settings)),
        page_routes=tuple(r.name for r in routes if r.kind == "page"),
        models=tuple((m.name, tuple(t.provider for t in m.targets)) for m in inf.models) if inf.enabled else (),
        teams_token_env=inf.teams.admin_token_env or "", teams_token_file=inf.teams.admin_token_file or "",
    )


def check_tls(settings: Settings) -> str | None:
    """The certificate and key load and match, the origin CA file loads; the problem's text or None."""
    from sluicegate.server.tls import TlsProblem, server_context
    from sluicegate.upstream.tls import OriginTlsProblem, client_context

    try:
        server_context(settings.server)
        if settings.publisher.ca_file:
            client_context(ca_file=settings.publisher.ca_file)
    except (TlsProblem, OriginTlsProblem) as exc:
        return str(exc)
    return None


def check_buildable(settings: Settings) -> None:
    """The checks only a built app can make (e.g. secrets named by ``*_env`` are set); raises ValueError."""
    from sluicegate.server.app import SluicegateApp

    SluicegateApp(settings).observer.shutdown()  # e.g. a tracing exporter thread: not needed for a check


def _argv(label: str) -> list[str]:
    return [sys.executable, "-m", "sluicegate.server.configcheck", "--label", label]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the check's metrics must not land among the workers' files
    return env


def _verdict(code: int | None, stdout: bytes, stderr: bytes, label: str) -> Checked:
    if code == 0:
        try:
            return Checked(SupervisorView.from_json(stdout.decode("utf-8")))
        except (ValueError, KeyError, TypeError) as exc:
            return Checked(None, f"{label}: the configuration check answered nonsense: {exc}")
    text = stderr.decode("utf-8", "replace").strip()
    return Checked(None, text or f"{label}: the configuration check failed (exit code {code})",
                   startup=code == EXIT_STARTUP)


def check_in_child(text: str, label: str, timeout: float = CHECK_TIMEOUT) -> Checked:
    """Validate ``text``, build an app from it and load its TLS files, in a child: the view, or the problem."""
    try:
        proc = subprocess.run(_argv(label), input=text.encode("utf-8"), capture_output=True, env=_env(),
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Checked(None, f"{label}: the configuration check did not finish in {timeout:g} s")
    return _verdict(proc.returncode, proc.stdout, proc.stderr, label)


async def check_in_child_async(text: str, label: str, timeout: float = CHECK_TIMEOUT) -> Checked:
    """``check_in_child`` without blocking the event loop (the supervisor's reload)."""
    proc = await asyncio.create_subprocess_exec(*_argv(label), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                stderr=subprocess.PIPE, env=_env())
    try:
        out, err = await asyncio.wait_for(proc.communicate(text.encode("utf-8")), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return Checked(None, f"{label}: the configuration check did not finish in {timeout:g} s")
    return _verdict(proc.returncode, out, err, label)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from sluicegate.config import ConfigError, load_settings_text

    ap = argparse.ArgumentParser(prog="sluicegate-configcheck")
    ap.add_argument("--label", required=True, help="the config file the text came from (for messages)")
    args = ap.parse_args(argv)
    text = sys.stdin.buffer.read().decode("utf-8")
    try:
        settings = load_settings_text(text, args.label)
        check_buildable(settings)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_NOT_BUILDABLE
    except ValueError as exc:
        print(f"{args.label}: {exc}", file=sys.stderr)
        return EXIT_NOT_BUILDABLE
    problem = check_tls(settings)
    if problem is not None:
        print(problem, file=sys.stderr)
        return EXIT_STARTUP
    sys.stdout.write(view_of(settings).to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
