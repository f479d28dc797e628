from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sluicegate.dev.origin.hostile import ORIGIN_AUTHORITY, ORIGIN_HOST, OriginLog, build_origin
from tests.support.servers import ProxyProcess, ThreadedApp, free_port

PROXY_CONFIG = """
[server]
host = "127.0.0.1"
port = {{port}}
trusted_proxies = ["10.0.0.0/8"]

[publisher]
origin_url = "{origin}"
public_hosts = ["127.0.0.1:{{port}}", "www.pub.test"]

[limits]
max_decoded_body_bytes = 16777216

[timeouts]
connect = 2.0
first_byte = 1.0
idle = 1.0
"""


class Origin:
    def __init__(self, server: ThreadedApp, log: OriginLog) -> None:
        self.server = server
        self.log = log
        self.port = server.port
        self.url = server.url
        self.authority = f"127.0.0.1:{server.port}"


@pytest.fixture(scope="session")
def origin() -> Iterator[Origin]:
    log = OriginLog()
    port = free_port()
    app = build_origin(log)
    app[ORIGIN_AUTHORITY] = f"127.0.0.1:{port}"
    app[ORIGIN_HOST] = "127.0.0.1"
    server = ThreadedApp(app, port).start()
    yield Origin(server, log)
    server.stop()


def start_proxy(tmp: Path, origin_url: str, workers: int = 1, extra: str = "") -> ProxyProcess:
    return ProxyProcess(tmp, PROXY_CONFIG.format(origin=origin_url) + extra, workers=workers).start()


@pytest.fixture(scope="session")
def proxy(origin: Origin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    p = start_proxy(tmp_path_factory.mktemp("proxy"), origin.url)
    yield p
    p.stop()
