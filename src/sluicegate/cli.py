"""Command line: ``serve``, ``demo``, ``check-config`` (and ``bench``/``profile`` from ``sluicegate.bench``)."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sluicegate import __version__

if TYPE_CHECKING:  # `serve` (the supervisor, for the server's life) never imports the config model
    from sluicegate.config import Settings
    from sluicegate.server.supervisor_view import SupervisorView


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
    except UnicodeDecodeError as exc:
        print(f"{path}: not UTF-8 text (byte {exc.start})", file=sys.stderr)
    return None


def _read_config(path: str) -> tuple[Settings, str] | None:
    """Settings (and the exact text they came from) plus the checks only a built app can make
    (e.g. secrets named by ``*_env`` are set). Problems are printed, one per line; ``None`` then."""
    from sluicegate.config import ConfigError, load_settings_text
    from sluicegate.server.configcheck import check_buildable

    text = _read_text(path)
    if text is None:
        return None
    try:
        settings = load_settings_text(text, path)
        check_buildable(settings)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None
    except ValueError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return None
    return settings, text


def _load_for_serving(path: str) -> Settings | None:
    loaded = _read_config(path)
    return loaded[0] if loaded is not None else None


def _check_for_serving(path: str) -> tuple[SupervisorView, str] | None:
    """The same checks as ``_read_config`` plus the TLS files, made by a short-lived child
    (``server.configcheck``): the process that goes on to supervise never imports the config model or the
    app. The supervisor's view of the config and its text; ``None`` when refused (printed, one line)."""
    from sluicegate.server.configcheck import check_in_child

    text = _read_text(path)
    if text is None:
        return None
    checked = check_in_child(text, path)
    if checked.view is None:
        print(f"sluicegate: {checked.problem}" if checked.startup else checked.problem, file=sys.stderr)
        return None
    return checked.view, text


def _cmd_serve(args: argparse.Namespace) -> int:
    from sluicegate.server.run import HANDOVER

    if HANDOVER in os.environ:  # one process re-executed by its reload (server.single): config checked already
        from sluicegate.server.single import resume

        return resume(str(Path(args.config).resolve()))
    # Command-line overrides go through the same validation (and reach every worker) as env overrides.
    for key, value in (("HOST", args.host), ("PORT", args.port), ("WORKERS", args.workers)):
        if value is not None:
            os.environ[f"SLUICEGATE__SERVER__{key}"] = str(value)
    loaded = _check_for_serving(args.config)
    if loaded is None:
        return 2
    view, text = loaded
    return _serve(view, args.config, text)


def _serve(view: SupervisorView, path: str, text: str) -> int:
    from sluicegate.server.run import StartupError, serve

    try:
        return serve(view, str(Path(path).resolve()), text, workers=view.workers)
    except StartupError as exc:
        print(f"sluicegate: {exc}", file=sys.stderr)
        return 2


def _cmd_check(args: argparse.Namespace) -> int:
    loaded = _read_config(args.file)
    if loaded is None:
        return 2
    settings, text = loaded
    from sluicegate.config.loader import locate
    from sluicegate.config.routes import table_warnings

    for loc, message in table_warnings(settings.publisher.routes):  # legal, but worth a look
        print(f"{locate(text, args.file, ('publisher', *loc))}: warning: {message}", file=sys.stderr)
    hosts = ", ".join(settings.publisher.public_hosts)
    print(f"{args.file}: ok (origin {settings.publisher.origin_url}, serving {hosts})")
    return 0


def _cmd_reload(args: argparse.Namespace) -> int:
    """Validate the file here first (its errors printed, nothing sent), then SIGHUP the supervisor."""
    settings = _load_for_serving(args.config)
    if settings is None:
        print("reload not sent: the running configuration stays", file=sys.stderr)
        return 2
    pid = args.pid
    pid_file = args.pid_file or settings.server.pid_file
    if pid is None:
        if not pid_file:
            print("sluicegate reload: give --pid, --pid-file, or set [server] pid_file", file=sys.stderr)
            return 2
        try:
            pid = int(Path(pid_file).read_text().strip())
        except (OSError, ValueError) as exc:
            print(f"sluicegate reload: cannot read a pid from {pid_file}: {exc}", file=sys.stderr)
            return 2
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        print(f"sluicegate reload: cannot signal pid {pid}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"reload requested (pid {pid}); the result is in the server's log and at the admin /status")
    return 0


DEMO_CONFIG = """\
# Written by `sluicegate demo`: the proxy in front of the bundled demo origin and a mock LLM provider
# (both started beside the proxy as their own processes; the proxy itself never starts either).
[server]
host = "127.0.0.1"
port = {port}

[admin]
listen = "127.0.0.1:{admin_port}"

[publisher]
origin_url = "http://127.0.0.1:{origin_port}"
public_hosts = ["127.0.0.1:{port}", "localhost:{port}"]

[html]
head_inject = ['<meta name="x-served-by" content="sluicegate">']

[inference]
path_prefix = "/llm"
listen_hosts = ["inference.local"]

[[inference.providers]]
name = "mock"
kind = "mock"                          # the mock provider (sluicegate.dev.mock_provider), run beside the proxy
base_url = "http://127.0.0.1:{mock_port}/v1"

[[inference.models]]
name = "demo"
targets = [{{ provider = "mock", model = "mock-1" }}]
"""


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    import urllib.request  # here: not loaded (http.client, email: ~1.5 MiB RSS) by `serve`, which never uses it

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def _wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


TRY_THIS = """
sluicegate demo is running. Try this:
  page (rewritten):   curl -s http://127.0.0.1:{port}/ | head -20
  Flight (RSC) route: curl -s http://127.0.0.1:{port}/flight
  inference (curl):   curl -s http://127.0.0.1:{port}/llm/v1/chat/completions -H 'content-type: application/json' \\
                        -d '{{"model":"demo","messages":[{{"role":"user","content":"hi"}}],"stream":true}}'
  inference (openai SDK):
    python -c 'import openai; c = openai.OpenAI(base_url="http://127.0.0.1:{port}/llm/v1", api_key="unused"); \\
      r = c.chat.completions.create(model="demo", messages=[{{"role": "user", "content": "hi"}}]); \\
      print(r.choices[0].message.content)'
  metrics:            curl -s http://127.0.0.1:{admin_port}/metrics | grep sluicegate_requests_total
  status / readiness: curl -s http://127.0.0.1:{admin_port}/status ; curl -s http://127.0.0.1:{admin_port}/readyz
  the origin itself:  http://127.0.0.1:{origin_port}/
  the mock provider:  http://127.0.0.1:{mock_port}/v1/chat/completions (what /llm relays to)
Ctrl+C (or SIGTERM) stops the proxy, the demo origin and the mock provider.
"""


def _cmd_demo(args: argparse.Namespace) -> int:
    taken = [f"{what} port {port}" for what, port in (("origin", args.origin_port), ("proxy", args.port),
                                                        ("admin", args.admin_port), ("mock", args.mock_port))
             if not _port_free(port)]
    if taken:
        print(f"sluicegate demo: {', '.join(taken)} already in use by another process; choose others with "
              "--origin-port / --port / --admin-port / --mock-port", file=sys.stderr)
        return 2

    def _stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    # Until the server's own handlers are installed, a SIGTERM must still reach the finally below.
    previous = signal.signal(signal.SIGTERM, _stop)
    origin = subprocess.Popen([sys.executable, "-m", "sluicegate.dev.demo", "--port", str(args.origin_port)])
    # The mock LLM provider is a dev tool: it runs beside the proxy, which treats it as any provider.
    mock = subprocess.Popen([sys.executable, "-m", "sluicegate.dev.mock_provider", "--port", str(args.mock_port)],
                            stdout=subprocess.DEVNULL)
    workdir = Path(tempfile.mkdtemp(prefix="sluicegate-demo-"))
    try:
        if not _wait_http(f"http://127.0.0.1:{args.origin_port}/static/extra.css", 15, origin):
            print(f"sluicegate demo: the demo origin did not start on port {args.origin_port}", file=sys.stderr)
            return 1
        if not _wait_port(args.mock_port, 15, mock):
            print(f"sluicegate demo: the mock provider did not start on port {args.mock_port}", file=sys.stderr)
            return 1
        config = workdir / "demo.toml"
        config.write_text(DEMO_CONFIG.format(port=args.port, origin_port=args.origin_port, admin_port=args.admin_port,
                                             mock_port=args.mock_port))
        loaded = _check_for_serving(str(config))
        if loaded is None:
            return 2
        print(TRY_THIS.format(port=args.port, origin_port=args.origin_port, admin_port=args.admin_port,
                              mock_port=args.mock_port))
        sys.stdout.flush()
        return _serve(loaded[0], str(config), loaded[1])
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(workdir, ignore_errors=True)
        for child in (origin, mock):
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(5)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()


def _cmd_version(args: argparse.Namespace) -> int:
    if not args.verbose:
        print(f"sluicegate {__version__}")
        return 0
    from sluicegate.buildinfo import describe

    print("\n".join(describe()))
    return 0


def build_parser(tools: bool = True) -> argparse.ArgumentParser:
    """The command line; ``tools=False`` leaves out the tool commands (bench, teams, check-site), whose
    modules a ``serve`` process (the supervisor, for the server's whole life) has no use for."""
    parser = argparse.ArgumentParser(prog="sluicegate", description="Streaming edge proxy")
    parser.add_argument("--version", action="version", version=f"sluicegate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the proxy")
    p.add_argument("--config", required=True, help="TOML settings file")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int)
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("demo", help="run the bundled demo origin with the proxy in front of it")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--origin-port", type=int, default=9000)
    p.add_argument("--admin-port", type=int, default=9901)
    p.add_argument("--mock-port", type=int, default=9100, help="the mock LLM provider run beside the proxy")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("reload", help="validate a settings file, then tell the running server to load it (SIGHUP)")
    p.add_argument("--config", required=True, help="the TOML settings file the server runs with")
    p.add_argument("--pid", type=int, help="the supervisor's pid (default: read [server] pid_file)")
    p.add_argument("--pid-file")
    p.set_defaults(func=_cmd_reload)

    p = sub.add_parser("version", help="print the version (--verbose: Python, event loop, parser, fast paths)")
    p.add_argument("--verbose", "-v", action="store_true")
    p.set_defaults(func=_cmd_version)

    p = sub.add_parser("check-config", help="validate a settings file")
    p.add_argument("file")
    p.set_defaults(func=_cmd_check)
    if not tools:
        return parser

    try:
        from sluicegate.bench.cli import register
    except ImportError:
        pass
    else:
        register(sub)
    from sluicegate.sitecheck.cli import register as register_check_site
    from sluicegate.teams.cli import register as register_teams

    register_teams(sub)

    register_check_site(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(tools=argv[:1] != ["serve"]).parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
