"""One headless Chromium per side, driven over the DevTools protocol, observing one navigation at a time.

Same binary and flags as ``sluicegate bench browser`` and the browser tests (``bench.browser.CHROMIUM_FLAGS``:
headless, no sandbox, no background networking, ...), with a fresh profile per browser, so the direct and
the proxied side never share cookies (cookies ignore ports, and both sides may live on 127.0.0.1).

Must not know: what is compared, how pages are found, the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

try:
    import aiohttp
except ImportError as exc:  # an optional extra: the proxy itself does not need it
    raise ImportError("sitecheck's browser driver needs aiohttp (Chromium's DevTools websocket): "
                      "pip install 'sluicegate[tools]'") from exc

from sluicegate.bench.browser import CHROMIUM_FLAGS, Cdp, CdpError, _devtools_url
from sluicegate.sitecheck.compare import Load

MAX_DOM_CHARS = 4_000_000
IDLE_MS = 500

_SNAPSHOT_JS = r"""((ignore, maxChars) => {
  const skip = new Set();
  for (const sel of ignore) { try { for (const el of document.querySelectorAll(sel)) skip.add(el); } catch (e) {} }
  const out = []; let size = 0;
  const push = (line) => { if (size <= maxChars) { out.push(line); size += line.length; } };
  const walk = (node, depth) => {
    if (size > maxChars) return;
    if (node.nodeType === 1) {
      if (skip.has(node)) return;
      const attrs = Array.from(node.attributes).map((a) => a.name + '=' + JSON.stringify(a.value)).sort();
      push('  '.repeat(depth) + '<' + node.nodeName.toLowerCase() + (attrs.length ? ' ' + attrs.join(' ') : '') + '>');
      const kids = node.nodeName === 'TEMPLATE' && node.content ? node.content.childNodes : node.childNodes;
      // Adjacent text nodes are one text (as Node.normalize() would make them): where a parser splits text
      // depends on how the bytes arrived over the network, not on what the page is.
      let run = null;
      const text = () => {
        const t = run === null ? '' : run.replace(/\s+/g, ' ').trim();
        if (t) push('  '.repeat(depth + 1) + '#text ' + JSON.stringify(t));
        run = null;
      };
      for (const c of kids) {
        if (c.nodeType === 3 || c.nodeType === 4) { run = (run === null ? '' : run) + c.data; continue; }
        text();
        walk(c, depth + 1);
      }
      text();
    }
  };
  if (document.documentElement) walk(document.documentElement, 0);
  const forms = Array.from(document.forms || []).map((f, i) => ({
    index: i, method: (f.method || 'get').toLowerCase(), action: f.action, id: f.id || null,
    fields: Array.from(f.elements).filter((e) => e.name).map((e) =>
      [e.name, (e.type || '').toLowerCase(), e.type === 'hidden' ? e.value : '']),
  }));
  const links = Array.from(document.querySelectorAll('a[href], area[href]')).map((a) => a.href);
  const n = performance.getEntriesByType('navigation')[0];
  return JSON.stringify({ lines: out, truncated: size > maxChars, forms, links,
    ttfb: n ? n.responseStart : null, load: n ? n.loadEventEnd : null });
})"""

# Fills the empty fields of form #i with fixed, recognisable values and submits it without running the
# page's submit handlers (HTMLFormElement.prototype.submit: deterministic, no validation, no JS routing).
_SUBMIT_JS = r"""((i) => {
  const f = document.forms[i];
  if (!f) return 'missing';
  for (const el of Array.from(f.elements)) {
    if (el.disabled || !el.name) continue;
    const t = (el.getAttribute('type') || '').toLowerCase();
    if (el.tagName === 'TEXTAREA') { if (!el.value) el.value = 'Checked by sluicegate check-site.'; continue; }
    if (el.tagName !== 'INPUT' || el.value) continue;
    if (t === 'email') el.value = 'check-site@example.com';
    else if (t === 'url') el.value = 'https://example.com/';
    else if (t === 'number' || t === 'range') el.value = '1';
    else if (['', 'text', 'search', 'password', 'tel'].includes(t)) el.value = 'sluicegate-check';
  }
  f.removeAttribute('target');
  HTMLFormElement.prototype.submit.call(f);
  return 'submitted';
})"""


class Browser:
    """``async with Browser(path) as tab:`` one Chromium with one page target."""

    def __init__(self, chromium: str, ignore: list[str] | None = None, timeout: float = 30.0) -> None:
        self.chromium = chromium
        self.ignore = ignore or []
        self.timeout = timeout
        self._profile = Path(tempfile.mkdtemp(prefix="sluicegate-check-site-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._cdp: Cdp | None = None
        self._pump: asyncio.Task[None] | None = None
        self._session = ""
        self._frame = ""
        self._load: Load | None = None
        self._inflight: set[str] = set()
        self._last_net = 0.0
        self._loads = 0
        self._load_event = asyncio.Event()
        self._urls: dict[str, str] = {}

    async def __aenter__(self) -> Browser:
        self._proc = subprocess.Popen(
            [self.chromium, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            ws_url = await _devtools_url(self._profile, self._proc, 20.0)
            self._http = aiohttp.ClientSession()
            self._ws = await self._http.ws_connect(ws_url, max_msg_size=0)
            self._cdp = cdp = Cdp(self._ws)
            targets = await cdp.call("Target.getTargets")
            pages = [t for t in targets.get("targetInfos", []) if t.get("type") == "page"]
            target = pages[0]["targetId"] if pages else (
                await cdp.call("Target.createTarget", {"url": "about:blank"}))["targetId"]
            self._session = (await cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True}))[
                "sessionId"]
            self._pump = asyncio.ensure_future(self._read_events())
            for domain in ("Page", "Runtime", "Network", "Log"):
                await self._call(f"{domain}.enable")
            tree = await self._call("Page.getFrameTree")
            self._frame = tree["frameTree"]["frame"]["id"]
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._cdp is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._cdp.call("Browser.close"), 2.0)
            await self._cdp.close()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()
        if self._proc is not None:
            try:
                self._proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        shutil.rmtree(self._profile, ignore_errors=True)

    async def _call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self._cdp is not None
        return await asyncio.wait_for(self._cdp.call(method, params, session=self._session), self.timeout)

    async def _read_events(self) -> None:
        assert self._cdp is not None
        while True:
            event = await self._cdp.events.get()
            with contextlib.suppress(Exception):
                self._on_event(event.get("method", ""), event.get("params", {}))

    def _on_event(self, method: str, p: dict[str, Any]) -> None:
        load = self._load
        if method == "Page.loadEventFired":
            self._loads += 1
            self._load_event.set()
        elif method.startswith("Network."):
            self._last_net = time.monotonic()
            rid = p.get("requestId", "")
            if method == "Network.requestWillBeSent":
                self._inflight.add(rid)
                self._urls[rid] = p["request"]["url"]
                if load is not None:
                    req = p["request"]
                    load.requests.append({"url": req["url"], "method": req.get("method", "GET"),
                                          "type": p.get("type", "")})
            elif method == "Network.webSocketCreated" and load is not None:
                load.requests.append({"url": p.get("url", ""), "method": "GET", "type": "WebSocket"})
            elif method == "Network.responseReceived" and load is not None:
                resp = p["response"]
                status = int(resp.get("status", 0))
                for name, value in (resp.get("headers") or {}).items():
                    for line in str(value).split("\n"):
                        load.headers.append({"url": resp.get("url", ""), "name": name, "value": line})
                if p.get("type") == "Document" and p.get("frameId") == self._frame:
                    load.status, load.final_url = status, resp.get("url", "")
                if status >= 400:
                    load.failed.append({"url": resp.get("url", ""), "reason": f"HTTP {status}"})
            elif method in ("Network.loadingFinished", "Network.loadingFailed"):
                self._inflight.discard(rid)
                if method == "Network.loadingFailed" and load is not None and not p.get("canceled"):
                    err = p.get("errorText", "failed")
                    if p.get("blockedReason"):
                        err = f"blocked: {p['blockedReason']}"
                    if err != "net::ERR_ABORTED":
                        load.failed.append({"url": self._urls.get(rid, ""), "reason": err})
        elif load is None:
            return
        elif method == "Runtime.consoleAPICalled":
            level = {"warning": "warning", "error": "error", "assert": "error"}.get(p.get("type", ""))
            if level:
                text = " ".join(_arg_text(a) for a in p.get("args", []))
                load.console.append({"level": level, "text": text, "source": "console"})
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            text = (d.get("exception") or {}).get("description") or d.get("text", "exception")
            load.console.append({"level": "error", "text": text, "source": "exception"})
        elif method == "Log.entryAdded":
            e = p.get("entry", {})
            if e.get("level") in ("error", "warning"):
                text = e.get("text", "") + (f" ({e['url']})" if e.get("url") else "")
                load.console.append({"level": e["level"], "text": text, "source": e.get("source", "log")})

    async def _settle(self, deadline: float) -> None:
        """Until no request is in flight for IDLE_MS (streams that never end: until the deadline)."""
        while time.monotonic() < deadline:
            quiet = (time.monotonic() - self._last_net) * 1000
            if not self._inflight and quiet >= IDLE_MS:
                return
            await asyncio.sleep(0.05)

    async def _wait_load(self, before: int, deadline: float) -> bool:
        while self._loads <= before:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._load_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._load_event.wait(), left)
        return True

    async def _observe(self, load: Load, deadline: float) -> Load:
        await self._settle(min(deadline, time.monotonic() + 10.0))
        res = await self._call("Runtime.evaluate", {
            "expression": f"{_SNAPSHOT_JS}({json.dumps(self.ignore)}, {MAX_DOM_CHARS})", "returnByValue": True})
        data = json.loads(res["result"]["value"])
        load.dom, load.dom_truncated = data["lines"], data["truncated"]
        load.links, load.forms = data["links"], data["forms"]
        load.ttfb_ms = data["ttfb"] or None
        load.load_ms = data["load"] or None
        if not load.final_url:
            load.final_url = (await self._call("Runtime.evaluate", {
                "expression": "location.href", "returnByValue": True}))["result"]["value"]
        self._load = None
        return load

    async def visit(self, url: str) -> Load:
        """Navigate to ``url``, wait for load and quiet network, and report what happened."""
        load = self._load = Load(url=url)
        self._inflight.clear()
        deadline = time.monotonic() + self.timeout
        before = self._loads
        try:
            nav = await self._call("Page.navigate", {"url": url})
            if nav.get("errorText"):
                load.error = f"navigation failed: {nav['errorText']}"
            elif not await self._wait_load(before, deadline):
                load.error = f"no load event within {self.timeout:g} s"
            return await self._observe(load, deadline)
        except (CdpError, TimeoutError, KeyError, ValueError) as exc:
            load.error = load.error or f"{type(exc).__name__}: {exc}"
            self._load = None
            return load

    async def submit(self, page_url: str, index: int) -> Load:
        """Load ``page_url``, submit its form #index, and observe the page the answer leads to."""
        page = await self.visit(page_url)
        load = self._load = Load(url=page_url)
        if page.error:
            load.error = f"page: {page.error}"
            self._load = None
            return load
        deadline = time.monotonic() + self.timeout
        before = self._loads
        try:
            res = await self._call("Runtime.evaluate", {"expression": f"{_SUBMIT_JS}({index})",
                                                        "returnByValue": True})
            if res["result"].get("value") != "submitted":
                load.error = f"form #{index} not found"
            elif not await self._wait_load(before, deadline):
                load.error = f"no page loaded within {self.timeout:g} s of submitting"
            return await self._observe(load, deadline)
        except (CdpError, TimeoutError, KeyError, ValueError) as exc:
            load.error = load.error or f"{type(exc).__name__}: {exc}"
            self._load = None
            return load


def _arg_text(arg: dict[str, Any]) -> str:
    if "value" in arg:
        v = arg["value"]
        return v if isinstance(v, str) else json.dumps(v)
    return str(arg.get("description") or arg.get("unserializableValue") or arg.get("type", ""))
