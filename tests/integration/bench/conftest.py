"""Fixtures of the bench integration tests: the measuring origin of ``sluicegate.dev.origin.measure`` (in a
thread, plain and TLS) and the Chromium binary (required: the browser tests fail, never skip, without it)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from sluicegate.dev.origin.measure import PAGE, TRICKLE_DELAY, build_measure_origin
from sluicegate.dev.origin.serve import ThreadedApp


@dataclass
class Origin:
    """What a test needs to know about the running origin."""

    url: str
    port: int
    page: bytes = PAGE
    trickle_delay: float = TRICKLE_DELAY


def _start(ssl_context: ssl.SSLContext | None = None) -> tuple[ThreadedApp, Origin]:
    server = ThreadedApp(build_measure_origin(), ssl_context=ssl_context).start()
    return server, Origin(url=server.url, port=server.port)


@pytest.fixture(scope="session")
def bench_origin() -> Iterator[Origin]:
    server, origin = _start()
    yield origin
    server.stop()


@pytest.fixture(scope="session")
def bench_tls_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    """The same origin over TLS with a self-signed certificate (made with the openssl CLI)."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    server, origin = _start(ctx)
    yield origin
    server.stop()


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("/usr/bin/chromium")
    if path is None:
        pytest.fail(
            "the browser tests need Debian's chromium: run `apt-get install -y chromium` "
            "(the test set-up script installs it before the tests)",
            pytrace=False,
        )
    return path
