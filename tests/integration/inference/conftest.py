"""Fixtures: mock providers (healthy and faulty) and one gateway routing to them, over real sockets."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import GatewayServer, settings_for

from sluicegate.config.inference import MockSettings
from sluicegate.dev.mock_provider import MockProvider

FAST = MockSettings(first_delay_ms=2, between_delay_ms=2, chunks=8)


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


class Mocks:
    def __init__(self) -> None:
        self.good = MockProvider(FAST).start_in_thread()
        self.good2 = MockProvider(FAST).start_in_thread()
        self.m429 = MockProvider(FAST.model_copy(update={"fault": "status=429,retry_after=0"})).start_in_thread()
        self.m500 = MockProvider(FAST.model_copy(update={"fault": "status=500"})).start_in_thread()
        self.m529 = MockProvider(FAST.model_copy(update={"fault": "status=529"})).start_in_thread()
        self.stall = MockProvider(FAST.model_copy(update={"fault": "stall_headers"})).start_in_thread()
        self.stall_body = MockProvider(FAST.model_copy(update={"fault": "stall_after=0"})).start_in_thread()
        self.errfirst = MockProvider(FAST.model_copy(update={"fault": "error_first"})).start_in_thread()
        self.refused_port = _closed_port()

    def all(self) -> list[MockProvider]:
        return [self.good, self.good2, self.m429, self.m500, self.m529, self.stall, self.stall_body, self.errfirst]


@pytest.fixture(scope="session")
def mocks() -> Iterator[Mocks]:
    ms = Mocks()
    yield ms
    for mock in ms.all():
        mock.stop_thread()


def _prov(name: str, url: str, kind: str = "mock", **extra: object) -> dict[str, object]:
    return {"name": name, "kind": kind, "base_url": url, **extra}


@pytest.fixture(scope="session")
def gateway(mocks: Mocks) -> Iterator[GatewayServer]:
    short = {"connect": 2, "first_byte": 0.5, "idle": 0.6}
    inference = {
        "path_prefix": "/llm",
        "listen_hosts": ["inference.local"],
        "max_request_body_bytes": 64 * 1024,
        "max_response_bytes": 2 * 1024 * 1024,
        "providers": [
            _prov("good", mocks.good.url, timeouts=short),
            _prov("good2", mocks.good2.url),
            # A real-kind provider pointing at the mock, to check credential injection per kind.
            _prov("oa", mocks.good.url, kind="openai-compatible", api_key="sk-live-abc123", timeouts=short),
            _prov("an", mocks.good.url, kind="anthropic", api_key_env="ANTHROPIC_KEY_FOR_TEST"),
            _prov("m429", mocks.m429.url),
            _prov("m500", mocks.m500.url),
            _prov("m529", mocks.m529.url),
            _prov("stall", mocks.stall.url, timeouts={"first_byte": 0.3}),
            _prov("stallb", mocks.stall_body.url, timeouts={"first_byte": 0.3}),
            _prov("errfirst", mocks.errfirst.url),
            _prov("refused", f"http://127.0.0.1:{mocks.refused_port}/v1", timeouts={"connect": 1}),
        ],
        "models": [
            {"name": "fast", "targets": [{"provider": "good", "model": "mock-1"}]},
            {"name": "oa", "targets": [{"provider": "oa", "model": "gpt-real"}]},
            {"name": "an", "targets": [{"provider": "an", "model": "claude-real"}]},
            {"name": "fb-refused", "targets": [{"provider": "refused", "model": "x"},
                                               {"provider": "good2", "model": "rescued"}]},
            {"name": "fb-429", "targets": [{"provider": "m429", "model": "x"},
                                           {"provider": "good2", "model": "rescued"}]},
            {"name": "fb-500", "targets": [{"provider": "m500", "model": "x"},
                                           {"provider": "good2", "model": "rescued"}]},
            {"name": "fb-529", "targets": [{"provider": "m529", "model": "x"},
                                           {"provider": "good2", "model": "rescued"}]},
            {"name": "fb-stall", "targets": [{"provider": "stall", "model": "x"},
                                             {"provider": "good2", "model": "rescued"}]},
            {"name": "fb-stallbody", "targets": [{"provider": "stallb", "model": "x"},
                                                 {"provider": "good2", "model": "rescued"}]},
            {"name": "fb-errfirst", "targets": [{"provider": "errfirst", "model": "x"},
                                                {"provider": "good2", "model": "rescued"}]},
            {"name": "all-429", "targets": [{"provider": "m429", "model": "x"}]},
            {"name": "all-down", "targets": [{"provider": "refused", "model": "x"},
                                             {"provider": "stall", "model": "y"}]},
        ],
        "retry": {"max_attempts": 3, "backoff": 0.01},
        "breaker": {"failure_threshold": 1000, "cooldown": 1},
    }
    server = GatewayServer(settings_for(inference), {"ANTHROPIC_KEY_FOR_TEST": "sk-ant-live-xyz"}).start()
    yield server
    server.stop()
