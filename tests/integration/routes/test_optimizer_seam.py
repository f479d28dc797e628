"""The image-optimizer seam, exercised by a stand-in optimizer on a real server: what the images side gets
(request facts, the client's own query even when the route strips it, a policy-applying ``fetch`` and
``response_headers``) and that ``False`` leaves the plain streamed relay untouched."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import uvicorn

from sluicegate.config import load_settings_text
from sluicegate.edge.asgi import Send, encode_headers
from sluicegate.publisher.optimizer_seam import AssetExchange
from sluicegate.publisher.routes import PublisherRoutes
from sluicegate.server.app import SluicegateApp
from tests.integration.routes.backends import build_assets
from tests.support.servers import ThreadedApp, free_port


class Reverser:
    """Answers ``?profile=rev`` with the source's bytes reversed; anything else is not its business."""

    def __init__(self) -> None:
        self.seen: list[AssetExchange] = []

    async def maybe_optimize(self, exchange: AssetExchange, send: Send) -> bool:
        self.seen.append(exchange)
        if b"profile=rev" not in exchange.client_query:
            return False
        resp = await exchange.fetch("GET", [("accept", "image/webp")])
        try:
            parts = []
            while chunk := await resp.read():
                parts.append(chunk)
            origin = [(k.decode(), v.decode()) for k, v in resp.headers if k.lower() != b"content-length"]
        finally:
            resp.release()
        body = b"".join(parts)[::-1]
        headers = exchange.response_headers(200, [*origin, ("content-length", str(len(body)))])
        await send({"type": "http.response.start", "status": 200, "headers": encode_headers(headers)})
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return True


class Served:
    def __init__(self, url: str, reverser: Reverser) -> None:
        self.url = url
        self.reverser = reverser


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    files = tmp_path_factory.mktemp("seam")
    (files / "pic.bin").write_bytes(b"0123456789")
    store = ThreadedApp(build_assets(Path(files))).start()
    port = free_port()
    settings = load_settings_text(f"""
[publisher]
origin_url = "{store.url}"
public_hosts = ["127.0.0.1:{port}"]
[[publisher.routes]]
name = "img"
prefix = "/img/"
kind = "asset"
origin_url = "{store.url}"
path_pattern = "^/img/(.+)$"
target_path = "/files/$1"
query = "strip"
cache_control = "public, max-age=9"
""", "seam.toml", environ={})
    app = SluicegateApp(settings)
    assert isinstance(app.publisher, PublisherRoutes)
    reverser = Reverser()
    app.publisher.entries[0].handler.optimizer = reverser
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.02)
    yield Served(f"http://127.0.0.1:{port}", reverser)
    server.should_exit = True
    thread.join(10)
    store.stop()


async def get(url: str, **kw: object) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as s, s.get(url, **kw) as r:  # type: ignore[arg-type]
        return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read()


async def test_optimizer_answers_with_route_policy(served: Served) -> None:
    status, h, body = await get(served.url + "/img/pic.bin?profile=rev", headers={"Cookie": "c=1"})
    assert status == 200 and body == b"9876543210"
    assert h["cache-control"] == "public, max-age=9" and "x-request-id" in h
    ex = served.reverser.seen[-1]
    assert ex.client_query == b"profile=rev" and ex.target == "/files/pic.bin"  # stripped for the backend
    assert ex.method == "GET" and ex.path == "/img/pic.bin" and ex.route.name == "img"


async def test_optimizer_declines_and_original_streams(served: Served) -> None:
    status, h, body = await get(served.url + "/img/pic.bin")
    assert status == 200 and body == b"0123456789" and h["content-length"] == "10"
    assert served.reverser.seen[-1].client_query == b""


def test_build_without_images_package_is_a_clear_error() -> None:
    settings = load_settings_text("""
[publisher]
origin_url = "http://127.0.0.1:9"
public_hosts = ["pub.test"]
[[publisher.routes]]
name = "img"
prefix = "/img"
kind = "asset"
origin_url = "http://127.0.0.1:9"
image_optimizer = { enabled = true, profile_set = "web" }
[image_optimizer.profile_sets.web]
default_profile = "m"
widths = [800]
[image_optimizer.profile_sets.web.profiles.m]
width = 800
""", "io.toml", environ={})
    try:
        import sluicegate.images  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match=r"routes\[img\]\.image_optimizer: the image optimizer is not part"):
            SluicegateApp(settings)
    else:  # the images side has landed: the route builds with its optimizer
        app = SluicegateApp(settings)
        assert isinstance(app.publisher, PublisherRoutes)
        assert app.publisher.entries[0].handler.optimizer is not None
