"""The origin server for the fixture sites under ``tests/fixtures/sites/<name>/``.

A site is a folder with ``public/`` (files served as they are, with the site's own URL filled into text
files) and optionally ``site.py`` with ``def setup(app: web.Application, site: Site) -> None`` adding the
dynamic endpoints it needs (forms, search, APIs). Like a real CMS, the origin knows its own URL from its
configuration (``site_url``, the way WordPress has ``siteurl`` or Next.js an env var), never from the
request's Host header, so every page carries absolute origin URLs in the spellings real sites use.

Placeholders in text files (``.html .xml .json .js .css .txt .webmanifest``):

* ``{{origin}}``      ``http://127.0.0.1:5000``
* ``{{host}}``        ``127.0.0.1:5000``
* ``{{origin_pct}}``  ``http%3A%2F%2F127.0.0.1%3A5000`` (percent-encoded once, as in query values)
* ``{{origin_json}}`` ``http:\\/\\/127.0.0.1:5000`` (PHP ``json_encode`` / WordPress)
* ``{{origin_u}}``    ``http:\\u002F\\u002F127.0.0.1:5000`` (devalue / Nuxt 2 serialisation)

Run one by hand: ``python -m tests.support.sites NAME --port 5000``.
"""

from __future__ import annotations

import argparse
import importlib.util
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from aiohttp import web

from tests.support.servers import ThreadedApp, free_port

SITES_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "sites"
TEXT = {".html", ".xml", ".json", ".js", ".css", ".txt", ".webmanifest", ".svg"}
TYPES = {".html": "text/html; charset=UTF-8", ".xml": "application/xml; charset=UTF-8",
         ".json": "application/json; charset=UTF-8", ".js": "text/javascript; charset=UTF-8",
         ".css": "text/css; charset=UTF-8", ".svg": "image/svg+xml", ".ico": "image/x-icon",
         ".png": "image/png", ".txt": "text/plain; charset=UTF-8"}
SITE_KEY = web.AppKey("site", object)


@dataclass
class Site:
    name: str
    url: str  # the origin's own base URL, from its configuration

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def public_dir(self) -> Path:
        return SITES_DIR / self.name / "public"

    def fill(self, text: str) -> str:
        return (text.replace("{{origin_pct}}", quote(self.url, safe=""))
                .replace("{{origin_json}}", self.url.replace("/", "\\/"))
                .replace("{{origin_u}}", self.url.replace("/", "\\u002F"))
                .replace("{{origin}}", self.url)
                .replace("{{host}}", self.host))

    def owns(self, url: str) -> bool:
        """Is ``url`` one of this site's own URLs (what a CMS checks before it trusts a redirect or embed)?"""
        return url == self.url or url.startswith(self.url + "/")

    def file(self, path: str) -> Path | None:
        """``/a/`` -> public/a/index.html, ``/a`` -> public/a, a.html, a/index.html; then a/index.json, a.json."""
        rel = path.lstrip("/")
        base = self.public_dir.resolve()
        first = (rel + "index.html") if rel.endswith("/") or not rel else rel
        for cand in (first, rel + ".html", rel + "/index.html", rel.rstrip("/") + "/index.json",
                     rel.rstrip("/") + ".json"):
            p = (base / cand).resolve()
            if p.is_file() and p.is_relative_to(base):
                return p
        return None

    def render(self, path: Path, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        suffix = path.suffix.lower()
        ctype = TYPES.get(suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        body = self.fill(path.read_text("utf-8")).encode() if suffix in TEXT else path.read_bytes()
        return web.Response(status=status, body=body, headers={"Content-Type": ctype, **(headers or {})})

    def page(self, name: str, status: int = 200, headers: dict[str, str] | None = None,
             **values: str) -> web.Response:
        """A template from ``<site>/templates/`` with ``{{key}}`` values filled (values are not escaped)."""
        text = (SITES_DIR / self.name / "templates" / name).read_text("utf-8")
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        return web.Response(status=status, text=self.fill(text), content_type="text/html", charset="utf-8",
                            headers=headers)


def build_app(name: str, url: str) -> web.Application:
    site = Site(name, url)
    if not site.public_dir.is_dir():
        raise ValueError(f"no fixture site {name!r} under {SITES_DIR}")
    app = web.Application()
    app[SITE_KEY] = site
    module = SITES_DIR / name / "site.py"
    if module.exists():
        spec = importlib.util.spec_from_file_location(f"fixture_site_{name}", module)
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mod.setup(app, site)

    async def static(request: web.Request) -> web.StreamResponse:
        path = site.file(request.path)
        if path is None:
            nf = site.file("/404.html")
            if nf is not None:
                return site.render(nf, status=404)
            raise web.HTTPNotFound()
        return site.render(path)

    app.router.add_get("/{tail:.*}", static)
    return app


def start(name: str, port: int | None = None) -> ThreadedApp:
    """The site on 127.0.0.1:port (free port by default), configured with its own address as its URL."""
    port = port or free_port()
    return ThreadedApp(build_app(name, f"http://127.0.0.1:{port}"), port).start()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("name")
    ap.add_argument("--port", type=int, default=5000)
    ap.add_argument("--site-url", help="the URL the site believes is its own (default: its address)")
    args = ap.parse_args()
    url = args.site_url or f"http://127.0.0.1:{args.port}"
    print(f"{args.name}: {url}", flush=True)
    web.run_app(build_app(args.name, url), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
