"""Fixtures of the bench integration tests: a local origin and the Chromium binary (required, not skipped)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.integration.bench.origin import Origin, OriginThread


@pytest.fixture(scope="session")
def origin() -> Iterator[Origin]:
    thread = OriginThread()
    yield thread.start()
    thread.stop()


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
