"""The bundled demo origin: a small publisher site whose pages point at its own absolute URL.

Served with aiohttp.web. Every page names the origin by absolute URL (links, images, srcset,
CSS ``url()``, inline script, JSON) so the proxy's rewriting is visible, plus a gzip page, a
brotli page, a page that trickles over 2 s, and a 64 MiB binary streamed from a fixed pattern.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib

import brotli

try:
    from aiohttp import web
except ImportError as exc:  # an optional extra: the proxy itself does not need it
    raise ImportError("the demo origin needs aiohttp: pip install 'sluicegate[tools]'") from exc

BIG_SIZE = 64 * 1024 * 1024
_BLOCK = hashlib.sha256(b"sluicegate").digest() * 2048  # 64 KiB of fixed, incompressible-looking bytes


def _page(origin: str, title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="canonical" href="{origin}/">
<link rel="stylesheet" href="{origin}/static/site.css">
<style>.hero {{ background: url("{origin}/static/hero.svg") no-repeat; }}</style>
<script>window.SITE = {{"home": "{origin}/", "api": "{origin.replace("/", chr(92) + "/")}\\/api\\/data.json"}};</script>
</head>
<body>
<header class="hero"><a href="{origin}/">Home</a> <a href="//{origin.split("://", 1)[1]}/about">About</a></header>
{body}
<footer><a href="{origin}/gzip.html">gzip page</a> · <a href="{origin}/brotli.html">brotli page</a> ·
<a href="{origin}/trickle.html">trickling page</a> · <a href="{origin}/big.bin">64 MiB binary</a> ·
<a href="{origin}/api/data.json">JSON API</a></footer>
</body>
</html>
"""


def _index(origin: str) -> str:
    body = f"""<main>
<h1>Demo publisher</h1>
<p>Every URL below was written as <code>{origin}</code> by the origin.</p>
<img src="{origin}/static/hero.svg" alt="hero"
     srcset="{origin}/static/hero.svg 1x, {origin}/static/hero.svg 2x">
<form action="{origin}/search" method="get"><input name="q"><button>Search</button></form>
<ul>{"".join(f'<li><a href="{origin}/article/{i}">Article {i}</a></li>' for i in range(1, 21))}</ul>
<p>Other sites stay untouched: <a href="https://example.org/">example.org</a>.</p>
</main>"""
    return _page(origin, "Demo publisher", body)


def build_app(origin: str) -> web.Application:
    origin = origin.rstrip("/")
    app = web.Application()
    routes = web.RouteTableDef()

    def html(text: str) -> web.Response:
        return web.Response(text=text, content_type="text/html", charset="utf-8")

    @routes.get("/")
    async def index(_: web.Request) -> web.Response:
        return html(_index(origin))

    @routes.get("/about")
    @routes.get("/article/{n}")
    @routes.get("/search")
    async def article(request: web.Request) -> web.Response:
        n = request.match_info.get("n", "about")
        return html(
            _page(origin, f"Page {n}", f"<main><h1>Page {n}</h1><p>Back <a href='{origin}/'>home</a>.</p></main>")
        )

    @routes.get("/gzip.html")
    async def gz(_: web.Request) -> web.Response:
        body = gzip.compress(_page(origin, "gzip", "<main><h1>Served gzip-encoded</h1></main>").encode())
        return web.Response(
            body=body,
            headers={"Content-Type": "text/html; charset=utf-8", "Content-Encoding": "gzip", "Vary": "Accept-Encoding"},
        )

    @routes.get("/brotli.html")
    async def br(_: web.Request) -> web.Response:
        body = brotli.compress(_page(origin, "brotli", "<main><h1>Served br-encoded</h1></main>").encode())
        return web.Response(
            body=body,
            headers={"Content-Type": "text/html; charset=utf-8", "Content-Encoding": "br", "Vary": "Accept-Encoding"},
        )

    @routes.get("/trickle.html")
    async def trickle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/html; charset=utf-8"})
        await resp.prepare(request)
        page = _page(
            origin,
            "Trickle",
            "<main><h1>This page arrives over 2 seconds</h1>"
            + "".join(f"<p>Part {i}: <a href='{origin}/article/{i}'>link</a></p>" for i in range(20))
            + "</main>",
        ).encode()
        parts = [page[i : i + len(page) // 20 + 1] for i in range(0, len(page), len(page) // 20 + 1)]
        for part in parts:
            await resp.write(part)
            await asyncio.sleep(2.0 / len(parts))
        await resp.write_eof()
        return resp

    @routes.get("/big.bin")
    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.content_length = BIG_SIZE
        await resp.prepare(request)
        for _ in range(BIG_SIZE // len(_BLOCK)):
            await resp.write(_BLOCK)
        await resp.write_eof()
        return resp

    @routes.get("/api/data.json")
    async def data(_: web.Request) -> web.Response:
        payload = (
            '{"self": "' + origin + '/api/data.json", "home": "' + origin.replace("/", "\\/") + '\\/",'
            ' "image": "' + origin + '/static/hero.svg", "other": "https://example.org/"}'
        )
        return web.Response(text=payload, content_type="application/json")

    @routes.get("/flight")
    async def flight(_: web.Request) -> web.Response:
        # A React Server Components (Flight) payload naming the origin, as a Next.js RSC request gets it.
        rows = (
            f'1:{{"href":"{origin}/about","title":"About"}}\n'
            f'0:["$","a",null,{{"href":"{origin}/article/1","children":"First article","data":"$1"}}]\n'
        )
        return web.Response(text=rows, content_type="text/x-component")

    @routes.get("/static/site.css")
    async def css(_: web.Request) -> web.Response:
        text = (
            f'@import url("{origin}/static/extra.css");\nbody {{ font-family: sans-serif; }}\n'
            f".logo {{ background-image: url({origin}/static/hero.svg); }}\n"
        )
        return web.Response(text=text, content_type="text/css")

    @routes.get("/static/extra.css")
    async def extra(_: web.Request) -> web.Response:
        return web.Response(text="main { max-width: 60em; margin: auto; }\n", content_type="text/css")

    @routes.get("/static/hero.svg")
    async def svg(_: web.Request) -> web.Response:
        text = (
            '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40"><rect width="120" height="40" '
            'fill="#3a7"/><text x="10" y="25" fill="#fff">sluicegate</text></svg>'
        )
        return web.Response(text=text, content_type="image/svg+xml")

    app.add_routes(routes)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="sluicegate demo origin")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args(argv)
    web.run_app(
        build_app(f"http://{args.host}:{args.port}"), host=args.host, port=args.port, print=None, access_log=None
    )


if __name__ == "__main__":
    main()
