"""The check itself: start (or use) a sluicegate, crawl same-site links breadth-first on the direct side,
load each page on both sides, submit its forms on both sides, compare.

Must not know: argument parsing, text rendering.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sluicegate.bench.report import Progress
from sluicegate.sitecheck.browser import Browser
from sluicegate.sitecheck.compare import FormResult, PageResult, compare_form, compare_page, unstable_lines
from sluicegate.sitecheck.sites import SiteMap


class CheckError(Exception):
    """A problem the user can fix (site unreachable, proxy did not start, browser missing)."""


@dataclass
class Options:
    url: str
    pages: int = 10
    proxy_url: str | None = None
    aliases: list[str] = field(default_factory=list)
    forms: str = "get"
    ignore: list[str] = field(default_factory=list)
    baseline: bool = True
    chromium: str | None = None
    timeout: float = 30.0


@dataclass
class Report:
    site: str
    proxy: str
    started_proxy: bool
    pages: list[PageResult]
    chromium: str
    seconds: float

    @property
    def worse(self) -> bool:
        return any(p.worse for p in self.pages)

    def totals(self) -> dict[str, int]:
        forms = [f for p in self.pages for f in p.forms]
        return {
            "pages": len(self.pages),
            "pages_worse": sum(p.worse for p in self.pages),
            "leaks": sum(len(p.leaks) + sum(len(f.leaks) for f in p.forms) for p in self.pages),
            "origin_refs": sum(len(p.origin_refs) for p in self.pages),
            "header_refs": sum(len(p.header_refs) for p in self.pages),
            "console_errors_direct": sum(len(p.direct.console_errors) for p in self.pages),
            "console_errors_proxied": sum(len(p.proxied.console_errors) for p in self.pages),
            "hydration_proxied": sum(len(p.proxied.hydration) for p in self.pages),
            "failed_new": sum(len(p.new_failed) for p in self.pages),
            "dom_diff_lines": sum(p.dom_diff_count for p in self.pages),
            "forms": len(forms),
            "forms_different": sum(not f.same for f in forms),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "site": self.site, "proxy": self.proxy, "started_proxy": self.started_proxy,
            "chromium": self.chromium, "seconds": round(self.seconds, 2),
            "worse": self.worse, "totals": self.totals(), "pages": [p.to_json() for p in self.pages],
        }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def reachable(url: str, timeout: float = 10.0) -> None:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # the site answers; a 4xx/5xx start page is something to report, not a set-up error
    except (OSError, ValueError) as exc:
        raise CheckError(f"{url} is not reachable: {exc}") from exc


@contextmanager
def local_proxy(origin: str, aliases: list[str]) -> Iterator[str]:
    """``sluicegate serve`` on a free 127.0.0.1 port publishing ``origin``; yields its base URL."""
    port = _free_port()
    # Its own admin listener (readiness lives there, not on the public port, where every path is the
    # origin's), on a free port: the default 127.0.0.1:9901 may belong to a sluicegate already running.
    admin = _free_port()
    tmp = Path(tempfile.mkdtemp(prefix="sluicegate-check-site-proxy-"))
    config = tmp / "sluicegate.toml"
    lines = ["[server]", 'host = "127.0.0.1"', f"port = {port}", "", "[publisher]",
             f'origin_url = "{origin}"', f'public_hosts = ["127.0.0.1:{port}"]']
    if aliases:
        lines.append("origin_aliases = [" + ", ".join(f'"{a}"' for a in aliases) + "]")
    lines += ["", "[admin]", f'listen = "127.0.0.1:{admin}"']
    config.write_text("\n".join(lines) + "\n")
    log = tmp / "sluicegate.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sluicegate", "serve", "--config", str(config), "--port", str(port)],
            stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        why = ""
        while True:
            if proc.poll() is not None:
                raise CheckError(f"sluicegate exited at start-up:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1):
                    break  # 200: a worker serves and the origin answered the readiness probe
            except urllib.error.HTTPError as exc:  # 503 and why (no worker yet, origin not probed yet)
                why = exc.read(2000).decode("utf-8", "replace")
            except OSError as exc:
                why = str(exc)
            if time.monotonic() > deadline:
                raise CheckError(f"sluicegate did not become ready ({why.strip()}):\n"
                                 f"{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def base_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def check(opts: Options, chromium: str, progress: Progress | None = None) -> Report:
    """Run the whole check; the proxy must be running at ``opts.proxy_url``."""
    assert opts.proxy_url
    site = SiteMap(base_url(opts.url), base_url(opts.proxy_url), opts.aliases)
    t0 = time.monotonic()
    results: list[PageResult] = []
    queue = [(site.page_key(opts.url), site.to_public(site.page_key(opts.url)))]
    seen = {queue[0][0]}
    forms_seen: set[str] = set()
    async with Browser(chromium, opts.ignore, opts.timeout) as direct, \
            Browser(chromium, opts.ignore, opts.timeout) as proxied:
        while queue and len(results) < opts.pages:
            url, public = queue.pop(0)
            step = len(results)
            if progress:
                progress.update(step / opts.pages, f"{step + 1}/{opts.pages} {url[:60]}")
            d = await direct.visit(url)
            p = await proxied.visit(public)
            unstable: set[str] = set()
            result = compare_page(site, d, p)
            if result.dom_diff_count and opts.baseline:
                again = await direct.visit(url)
                unstable = unstable_lines(site, d.dom, again.dom)
                result = compare_page(site, d, p, unstable)
            for form in d.forms:
                if opts.forms == "none" or (opts.forms == "get" and form["method"] != "get"):
                    continue
                if form["method"] not in ("get", "post"):
                    continue
                # The same form on many pages (a site-wide search box) is submitted once, where first seen.
                key = json.dumps([form["method"], form["action"], form.get("fields")], sort_keys=True)
                if key in forms_seen:
                    continue
                forms_seen.add(key)
                result.forms.append(await _submit_both(site, direct, proxied, (url, public), form, opts.baseline))
            results.append(result)
            for link, proxied_link in pair_links(site, d.links, p.links):
                key = site.page_key(link)
                if site.origin.owns(key) and key not in seen:
                    seen.add(key)
                    queue.append((key, site.page_key(proxied_link)))
    if progress:
        progress.done()
    return Report(opts.url, opts.proxy_url, False, results, chromium, time.monotonic() - t0)


def pair_links(site: SiteMap, direct: list[str], proxied: list[str]) -> list[tuple[str, str]]:
    """Each direct link with the link a visitor of the proxied page would follow instead.

    The proxied side follows the proxied page's own links, not a mapping of the direct URL made up by the
    checker: a query value the proxy rewrote (``?u=<public URL>``) must reach the origin as the proxy sends
    it. Links are matched modulo hosts, else by position when both pages have as many links; a proxied link
    that still points at the origin (already reported as a reference) is replaced by the mapped direct URL so
    the check stays on the proxy."""
    by_norm: dict[str, str] = {}
    for link in proxied:
        by_norm.setdefault(site.norm_proxied(link), link)
    aligned = len(direct) == len(proxied)
    out = []
    for i, link in enumerate(direct):
        twin = by_norm.get(site.norm_direct(link)) or (proxied[i] if aligned else None)
        if twin is None or site.origin.owns(twin):
            twin = site.to_public(link)
        out.append((link, twin))
    return out


async def _submit_both(site: SiteMap, direct: Browser, proxied: Browser, page: tuple[str, str],
                       form: dict[str, Any], baseline: bool) -> FormResult:
    url, public = page
    d = await direct.submit(url, form["index"])
    p = await proxied.submit(public, form["index"])
    result = compare_form(site, url, form, d, p)
    if result.differences and baseline and form["method"] == "get":
        # Only GET forms are sent twice: a second POST may not be answered like the first (a duplicate
        # comment, a used nonce) and would be a false difference, or a side effect on the site.
        again = await direct.submit(url, form["index"])
        result = compare_form(site, url, form, d, p, unstable_lines(site, d.dom, again.dom))
    return result
