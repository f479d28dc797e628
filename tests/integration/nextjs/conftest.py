"""Fixtures for the Next.js / Flight integration tests: the Node set-up, the fixture app as the
origin (``next start``), and ``sluicegate serve`` in front of it.

These tests need ``tests/node/setup.sh`` to have run (npm packages, ``next build``, chromium);
when it has not, they FAIL with that instruction - they are never skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import ProxyProcess, free_port

REPO = Path(__file__).resolve().parents[3]
NODE_DIR = REPO / "tests" / "node"
APP_DIR = REPO / "tests" / "fixtures" / "nextjs-app"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
NODE_ENV = {**os.environ, "NODE_ENV": "production", "NEXT_TELEMETRY_DISABLED": "1"}


def require_setup(*, browser: bool = False) -> None:
    missing = []
    for path in (
        NODE_DIR / "node_modules" / "react-server-dom-webpack",
        NODE_DIR / "node_modules" / "playwright-core",
        APP_DIR / "node_modules" / "next",
        APP_DIR / ".next" / "BUILD_ID",
    ):
        if not path.exists():
            missing.append(str(path.relative_to(REPO)))
    if browser and not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install -y chromium)")
    if missing:
        pytest.fail(
            "Node/Next.js set-up has not run; run `bash tests/node/setup.sh` first. Missing: " + ", ".join(missing),
            pytrace=False,
        )


def judge(files: list[Path]) -> dict[str, Any]:
    """React's own Flight client on each file: ``{path: {"ok": bool, "value"|"error": ...}}``."""
    require_setup()
    out = subprocess.run(
        ["node", str(NODE_DIR / "judge.mjs"), *map(str, files)],
        cwd=NODE_DIR,
        env=NODE_ENV,
        capture_output=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited early:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="session")
def next_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The fixture app under ``next start``; its pages embed ``ORIGIN_URL`` (its own address)."""
    require_setup()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("next") / "next.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [
                "node",
                str(APP_DIR / "node_modules" / "next" / "dist" / "bin" / "next"),
                "start",
                "-p",
                str(port),
                "-H",
                "127.0.0.1",
            ],
            cwd=APP_DIR,
            env={**NODE_ENV, "ORIGIN_URL": url},
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_http(url + "/api/data", proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


HEAD_SNIPPET = '<meta name="sluicegate-probe" content="injected">'


@pytest.fixture(scope="session")
def next_proxy(next_origin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    """``sluicegate serve`` publishing the fixture app (HTML + Flight rewriting on)."""
    tmp = tmp_path_factory.mktemp("proxy")
    config = f"""
[server]
host = "127.0.0.1"
port = {{port}}

[publisher]
origin_url = "{next_origin}"
public_hosts = ["127.0.0.1:{{port}}"]

[html]
head_inject = ['{HEAD_SNIPPET}']
"""
    proxy = ProxyProcess(tmp, config).start()
    try:
        yield proxy
    finally:
        proxy.stop()
