"""Headless Chromium loads gzip / brotli / zstd HTML through the proxy: injected scripts run exactly once."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluicegate.bench.browser import CHROMIUM_FLAGS
from tests.integration.conftest import Origin, start_proxy
from tests.support.servers import ProxyProcess

CHROMIUM = "/usr/bin/chromium"
COUNT = (
    "<script>(function(e){{e.setAttribute('{attr}', String(+(e.getAttribute('{attr}')||0)+1));}})"
    "(document.documentElement)</script>"
)
INJECT = f"""
[html]
head_inject = ["{COUNT.format(attr="data-sg-head")}"]
body_end_inject = ["{COUNT.format(attr="data-sg-end")}"]
"""


@pytest.fixture(scope="module")
def injecting_proxy(origin: Origin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    p = start_proxy(tmp_path_factory.mktemp("inject"), origin.url, extra=INJECT)
    yield p
    p.stop()


def dump_dom(url: str) -> str:
    assert Path(CHROMIUM).exists(), "Debian chromium is required: apt-get install -y chromium (./run.sh test does it)"
    profile = tempfile.mkdtemp(prefix="sg-chromium-")
    try:
        out = subprocess.run(
            [CHROMIUM, *(f for f in CHROMIUM_FLAGS if not f.startswith("--remote-debugging")),
             f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_injected_scripts_run_exactly_once(injecting_proxy: ProxyProcess, origin: Origin, coding: str) -> None:
    # The origin always answers /enc/<coding> with that Content-Encoding; the proxy re-encodes with it.
    dom = dump_dom(f"{injecting_proxy.url}/enc/{coding}")
    assert 'data-sg-head="1"' in dom and 'data-sg-end="1"' in dom
    assert f'href="http://127.0.0.1:{injecting_proxy.port}/item/3"' in dom
    assert origin.authority not in dom
