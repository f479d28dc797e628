"""A recording origin and a proxy in front of it, for the round-trip tests (real sockets)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sluicegate.dev.origin.recording import RecordingOrigin
from tests.integration.conftest import start_proxy
from tests.support.servers import ProxyProcess


@pytest.fixture(scope="module")
def rt_origin() -> Iterator[RecordingOrigin]:
    o = RecordingOrigin().start()
    yield o
    o.stop()


@pytest.fixture(scope="module")
def rt_proxy(rt_origin: RecordingOrigin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    p = start_proxy(tmp_path_factory.mktemp("rt-proxy"), rt_origin.url)
    yield p
    p.stop()
