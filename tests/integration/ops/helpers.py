"""Shared bits for the operations tests: a config with every [server] knob, log parsing, small HTTP calls."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.servers import ProxyProcess


def config(origin_url: str, server: str = "", extra: str = "", workers: int = 1) -> str:
    if "access_log" not in server:
        server += '\naccess_log = "json"'
    return f"""
[server]
host = "127.0.0.1"
port = {{port}}
workers = {workers}
{server}

[publisher]
origin_url = "{origin_url}"
public_hosts = ["127.0.0.1:{{port}}", "www.pub.test"]

[timeouts]
connect = "2s"
first_byte = "2s"
idle = "2s"
{extra}
"""


def start(tmp: Path, origin_url: str, server: str = "", extra: str = "", workers: int = 1,
          env: dict[str, str] | None = None) -> ProxyProcess:
    return ProxyProcess(tmp, config(origin_url, server, extra, workers), workers=workers, env=env).start()


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def access_lines(proxy: ProxyProcess) -> list[dict[str, Any]]:
    out = []
    for line in proxy.log().splitlines():
        if line.startswith('{"ts"'):
            out.append(json.loads(line))
    return out


def wait_for(pred: Any, timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def reload_refused(proxy: ProxyProcess) -> None:
    """An invalid file (a bad duration) sent by SIGHUP is refused with its ``file:line: key`` error, logged."""
    assert proxy.proc is not None
    good = proxy.config_path.read_text()
    proxy.config_path.write_text(good.replace('connect = "2s"', 'connect = "2 parsecs"'))
    line = good.splitlines().index('connect = "2s"') + 1
    os.kill(proxy.proc.pid, signal.SIGHUP)
    wait_for(lambda: "reload refused" in proxy.log(), what="the refusal")
    assert f"{proxy.config_path}:{line}: timeouts.connect: not a duration: '2 parsecs'" in proxy.log()


def metric(body: bytes, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in body.decode().splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total
