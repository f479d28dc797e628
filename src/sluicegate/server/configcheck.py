"""The config checks only a built app can make, run in a short-lived child so the supervisor never holds an app.

A config that validates can still fail when the app is built (a secret named by ``*_env`` unset, a route's
engine not installed, a bad key file): ``check_buildable`` builds the app once and throws it away. Building
it in the supervisor imported every subsystem the config names (publisher, pipeline, images, inference,
teams, first-party...) and kept them resident for the supervisor's life although it never serves a request
(docs/operations.md: supervisor footprint). ``check_in_child`` runs the same check in
``python -m sluicegate.server.configcheck``: the exact config text on stdin, the error text (as the
in-process check would print it) on stderr, exit code 0 (buildable) or 2 (not). The child inherits the
environment (``SLUICEGATE__*`` overrides, secrets) like a worker does, but never the metrics directory.
Must not know what the supervisor does with the answer.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sluicegate.config import Settings

CHECK_TIMEOUT = 60.0  # a fresh interpreter importing the app: seconds on a loaded machine, never minutes
EXIT_NOT_BUILDABLE = 2


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


def _verdict(code: int | None, stderr: bytes, label: str) -> str | None:
    if code == 0:
        return None
    text = stderr.decode("utf-8", "replace").strip()
    return text or f"{label}: the configuration check failed (exit code {code})"


def check_in_child(text: str, label: str, timeout: float = CHECK_TIMEOUT) -> str | None:
    """None when an app can be built from ``text``; else the error text (file:line: key ... when it has one)."""
    try:
        proc = subprocess.run(_argv(label), input=text.encode("utf-8"), capture_output=True, env=_env(),
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"{label}: the configuration check did not finish in {timeout:g} s"
    return _verdict(proc.returncode, proc.stderr, label)


async def check_in_child_async(text: str, label: str, timeout: float = CHECK_TIMEOUT) -> str | None:
    """``check_in_child`` without blocking the event loop (the supervisor's reload)."""
    proc = await asyncio.create_subprocess_exec(*_argv(label), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.PIPE, env=_env())
    try:
        _, err = await asyncio.wait_for(proc.communicate(text.encode("utf-8")), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return f"{label}: the configuration check did not finish in {timeout:g} s"
    return _verdict(proc.returncode, err, label)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from sluicegate.config import ConfigError, load_settings_text

    ap = argparse.ArgumentParser(prog="sluicegate-configcheck")
    ap.add_argument("--label", required=True, help="the config file the text came from (for messages)")
    args = ap.parse_args(argv)
    text = sys.stdin.buffer.read().decode("utf-8")
    try:
        check_buildable(load_settings_text(text, args.label))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_NOT_BUILDABLE
    except ValueError as exc:
        print(f"{args.label}: {exc}", file=sys.stderr)
        return EXIT_NOT_BUILDABLE
    return 0


if __name__ == "__main__":
    sys.exit(main())
