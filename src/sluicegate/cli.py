"""Command line: ``serve``, ``demo``, ``check-config`` (and ``bench``/``profile`` from ``sluicegate.bench``)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from sluicegate import __version__
from sluicegate.config import ConfigError, Settings, load_settings


def _load_for_serving(path: str) -> Settings | None:
    """Settings plus the checks only a built app can make (e.g. secrets named by ``*_env`` are set)."""
    try:
        settings = load_settings(path)
        from sluicegate.server.app import SluicegateApp

        SluicegateApp(settings)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None
    except ValueError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return None
    return settings


def _cmd_serve(args: argparse.Namespace) -> int:
    # Command-line overrides go through the same validation (and reach every worker) as env overrides.
    for key, value in (("HOST", args.host), ("PORT", args.port), ("WORKERS", args.workers)):
        if value is not None:
            os.environ[f"SLUICEGATE__SERVER__{key}"] = str(value)
    settings = _load_for_serving(args.config)
    if settings is None:
        return 2
    from sluicegate.server.run import serve

    serve(
        settings,
        args.config,
        host=args.host or settings.server.host,
        port=args.port or settings.server.port,
        workers=args.workers or settings.server.workers,
    )
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    settings = _load_for_serving(args.file)
    if settings is None:
        return 2
    hosts = ", ".join(settings.publisher.public_hosts)
    print(f"{args.file}: ok (origin {settings.publisher.origin_url}, serving {hosts})")
    return 0


DEMO_CONFIG = """\
# Written by `sluicegate demo`: the proxy in front of the bundled demo origin and a mock LLM provider.
[server]
host = "127.0.0.1"
port = {port}

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
kind = "mock"                          # the bundled mock provider, started in-process on a loopback port

[[inference.models]]
name = "demo"
targets = [{{ provider = "mock", model = "mock-1" }}]
"""


def _wait_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def _cmd_demo(args: argparse.Namespace) -> int:
    origin = subprocess.Popen([sys.executable, "-m", "sluicegate.demo.origin", "--port", str(args.origin_port)])
    try:
        if not _wait_http(f"http://127.0.0.1:{args.origin_port}/static/extra.css", 15):
            print(f"demo origin did not start on port {args.origin_port}", file=sys.stderr)
            return 1
        config = Path(tempfile.mkdtemp(prefix="sluicegate-demo-")) / "demo.toml"
        config.write_text(DEMO_CONFIG.format(port=args.port, origin_port=args.origin_port))
        settings = _load_for_serving(str(config))
        if settings is None:
            return 2
        print(f"demo origin:   http://127.0.0.1:{args.origin_port}/")
        print(f"sluicegate:    http://127.0.0.1:{args.port}/   (config: {config})")
        print(f'mock LLM:      http://127.0.0.1:{args.port}/llm/v1/chat/completions  (model "demo")')
        sys.stdout.flush()
        from sluicegate.server.run import serve

        serve(settings, str(config), host="127.0.0.1", port=args.port, workers=1)
        return 0
    finally:
        origin.terminate()
        origin.wait(5)


def _cmd_version(args: argparse.Namespace) -> int:
    if not args.verbose:
        print(f"sluicegate {__version__}")
        return 0
    from sluicegate.buildinfo import describe

    print("\n".join(describe()))
    return 0


def build_parser() -> argparse.ArgumentParser:
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
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("version", help="print the version (--verbose: Python, event loop, parser, fast paths)")
    p.add_argument("--verbose", "-v", action="store_true")
    p.set_defaults(func=_cmd_version)

    p = sub.add_parser("check-config", help="validate a settings file")
    p.add_argument("file")
    p.set_defaults(func=_cmd_check)

    try:
        from sluicegate.bench.cli import register
    except ImportError:
        pass
    else:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
