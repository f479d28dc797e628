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
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from tests.support.configs import publisher_config
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


@contextmanager
def next_server(tmp: Path, origin_url: str | None = None) -> Iterator[str]:
    """``next start`` on a free port; pages embed ``origin_url`` (default: its own address)."""
    require_setup()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp / f"next-{port}.log"
    next_bin = str(APP_DIR / "node_modules" / "next" / "dist" / "bin" / "next")
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            ["node", next_bin, "start", "-p", str(port), "-H", "127.0.0.1"],
            cwd=APP_DIR,
            env={**NODE_ENV, "ORIGIN_URL": origin_url or url},
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


@pytest.fixture(scope="session")
def next_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The fixture app under ``next start``; its pages embed ``ORIGIN_URL`` (its own address)."""
    with next_server(tmp_path_factory.mktemp("next")) as url:
        yield url


HEAD_SNIPPET = '<meta name="sluicegate-probe" content="injected">'


def proxy_config(origin: str) -> str:
    return publisher_config(origin, extra=f"""
[html]
head_inject = ['{HEAD_SNIPPET}']
""")


@pytest.fixture(scope="session")
def next_proxy(next_origin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    """``sluicegate serve`` publishing the fixture app (HTML + Flight rewriting on)."""
    proxy = ProxyProcess(tmp_path_factory.mktemp("proxy"), proxy_config(next_origin)).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(scope="session")
def resplit_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ProxyProcess]]:
    """(origin URL, proxy) where the origin is the fixture app behind a small server that cuts every
    ``__next_f`` push of its HTML into ~100-byte pushes: T rows span many scripts (as Next.js may
    emit them), so the browser hydrates from Flight bytes sluicegate carried between scripts."""
    from aiohttp import ClientSession, web

    from tests.integration.nextjs.resplit import resplit_pushes
    from tests.support.servers import ThreadedApp

    tmp = tmp_path_factory.mktemp("resplit")
    port = free_port()
    front = f"http://127.0.0.1:{port}"
    with next_server(tmp, origin_url=front) as upstream:
        sessions: list[ClientSession] = []
        skip_in = {"host", "accept-encoding", "content-length", "connection"}
        skip_out = {"content-length", "transfer-encoding", "connection", "content-encoding", "keep-alive"}

        async def handle(request: web.Request) -> web.Response:
            if not sessions:
                sessions.append(ClientSession(auto_decompress=False))
            headers = {k: v for k, v in request.headers.items() if k.lower() not in skip_in}
            async with sessions[0].request(
                request.method,
                upstream + request.path_qs,
                headers=headers,
                data=await request.read(),
                allow_redirects=False,
            ) as r:
                body = await r.read()
                out = CIMultiDict((k, v) for k, v in r.headers.items() if k.lower() not in skip_out)
                if r.content_type == "text/html":
                    body = resplit_pushes(body, 97)
                return web.Response(status=r.status, headers=out, body=body)

        async def close(_app: web.Application) -> None:
            for session in sessions:
                await session.close()

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        app.on_cleanup.append(close)
        server = ThreadedApp(app, port).start()
        try:
            proxy = ProxyProcess(tmp, proxy_config(front)).start()
            try:
                yield front, proxy
            finally:
                proxy.stop()
        finally:
            server.stop()
