"""Fixture sites (tests/fixtures/sites/*, and the Next.js app) behind a real ``sluicegate serve``, checked by
``sluicegate check-site`` run as a user runs it (a subprocess, headless Debian Chromium, JSON report).

Each site is checked once per session; the tests read the report. Chromium missing is a failure with the
install instruction, never a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import sites
from tests.support.configs import publisher_config
from tests.support.servers import ProxyProcess

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
# name -> (--pages budget, the fewest pages the crawl must reach: a fixture whose links break is caught)
SITES = {"gazette": (10, 5), "wordpress": (10, 6), "nuxt": (5, 2), "cms": (25, 15), "nextjs": (10, 6)}


@dataclass
class Checked:
    name: str
    origin: str
    proxy: str
    returncode: int
    report: dict[str, Any]
    text: str

    def pages(self) -> list[dict[str, Any]]:
        return list(self.report["pages"])

    def forms(self) -> list[dict[str, Any]]:
        return [f for p in self.report["pages"] for f in p["forms"]]


def run_check_site(url: str, out: Path, *args: str, timeout: float = 900) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "sluicegate", "check-site", url, "--json", str(out), "--no-progress", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    assert proc.returncode in (0, 1), f"check-site failed to run ({proc.returncode}):\n{proc.stderr[-4000:]}"
    report: dict[str, Any] = json.loads(out.read_text())
    assert (proc.returncode == 1) == report["worse"]
    return proc.returncode, report, proc.stdout


@contextmanager
def serve_site(name: str, tmp: Path) -> Iterator[str]:
    """The fixture site on a free port, configured with its own address as its URL; yields that URL."""
    tmp.mkdir(parents=True, exist_ok=True)
    if name == "nextjs":
        from tests.integration.nextjs.conftest import next_server

        with next_server(tmp) as url:
            yield url
        return
    server = sites.start(name)
    try:
        yield server.url
    finally:
        server.stop()


_cache: dict[str, Checked] = {}


@pytest.fixture(params=sorted(SITES))
def checked(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Checked:
    """check-site's report for one fixture site through a real sluicegate (computed once per session)."""
    name: str = request.param
    if name in _cache:
        return _cache[name]
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium", pytrace=False)
    if name == "nextjs":
        from tests.integration.nextjs.conftest import require_setup

        require_setup(browser=True)
    tmp = tmp_path_factory.mktemp(f"site-{name}")
    budget, _ = SITES[name]
    with serve_site(name, tmp) as origin:
        proxy = ProxyProcess(tmp, publisher_config(origin)).start()
        try:
            rc, report, text = run_check_site(origin + "/", tmp / "report.json", "--proxy-url", proxy.url,
                                              "--pages", str(budget), "--forms", "all")
        finally:
            proxy.stop()
    _cache[name] = Checked(name, origin, proxy.url, rc, report, text)
    return _cache[name]
