"""Real-socket harness: a mock provider and the gateway under uvicorn, each in a background thread."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Mapping
from typing import Any

import uvicorn

from sluicegate.config.model import Settings
from sluicegate.inference.gateway import InferenceGateway


class GatewayServer:
    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        self.gateway = InferenceGateway(settings, environ or {})
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app=self.gateway, loop="uvloop", http="httptools", lifespan="on",
                                log_level="critical", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None

    def _run(self) -> None:
        self.server.run(sockets=[self.sock])

    def start(self) -> GatewayServer:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                return self
            threading.Event().wait(0.01)
        raise RuntimeError("gateway did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def settings_for(inference: dict[str, Any]) -> Settings:
    return Settings.model_validate({"inference": inference})
