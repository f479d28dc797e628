"""``bench browser``: page-load timings from headless Debian Chromium over the DevTools protocol.

Every page load gets its own Chromium process with a fresh ``--user-data-dir`` (no cache, no cookies, no
warm sockets); URLs are interleaved and the order flips every round. Timings come from the page itself:
Navigation Timing (``responseStart``, ``domContentLoadedEventEnd``, ``domComplete``, ``loadEventEnd``)
and Paint Timing (``first-paint``, ``first-contentful-paint``), all in ms since navigation start.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

try:
    import aiohttp
except ImportError as exc:  # an optional extra: the proxy itself does not need it
    raise ImportError("the bench browser driver needs aiohttp (Chromium's DevTools websocket): "
                      "pip install 'sluicegate[tools]'") from exc

from sluicegate.bench.report import Progress, fmt_num, table
from sluicegate.bench.results import Result, describe

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--remote-debugging-port=0",
)

METRICS: tuple[tuple[str, str], ...] = (
    ("ttfb_ms", "TTFB"),
    ("first_paint_ms", "First Paint"),
    ("fcp_ms", "First Contentful Paint"),
    ("dcl_ms", "DOMContentLoaded"),
    ("dom_complete_ms", "DOM Complete"),
    ("load_ms", "load"),
)

_TIMINGS_JS = """(() => {
  const n = performance.getEntriesByType('navigation')[0];
  const p = {};
  for (const e of performance.getEntriesByType('paint')) p[e.name] = e.startTime;
  return JSON.stringify({nav: n ? n.toJSON() : null, paint: p, state: document.readyState});
})()"""


class ChromiumMissing(Exception):
    pass


class CdpError(Exception):
    pass


def find_chromium(explicit: str | None = None) -> str:
    candidates = [explicit] if explicit else [
        os.environ.get("SLUICEGATE_CHROMIUM", ""), "chromium", "/usr/bin/chromium", "chromium-browser",
        "google-chrome",
    ]
    for cand in candidates:
        if not cand:
            continue
        path = shutil.which(cand) or (cand if os.path.isfile(cand) and os.access(cand, os.X_OK) else None)
        if path:
            return path
    raise ChromiumMissing(
        (f"browser binary {explicit!r} not found" if explicit else "chromium is not installed")
        + "; install Debian's build with: apt-get install -y chromium"
    )


class Cdp:
    """A minimal DevTools client: commands with ids, events into per-session queues."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if "id" in data:
                    fut = self._pending.pop(data["id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(data)
                else:
                    self.events.put_nowait(data)
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(CdpError("DevTools connection closed"))

    async def call(self, method: str, params: dict[str, Any] | None = None,
                   session: str | None = None) -> dict[str, Any]:
        msg_id = next(self._ids)
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        await self.ws.send_str(json.dumps(msg))
        reply = await fut
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error'].get('message', reply['error'])}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def wait_event(self, method: str, deadline: float) -> dict[str, Any]:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(method)
            event = await asyncio.wait_for(self.events.get(), left)
            if event.get("method") == method:
                return event

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


async def _devtools_url(profile: Path, proc: subprocess.Popen[bytes], timeout: float) -> str:
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CdpError(f"chromium exited with code {proc.returncode} at start-up")
        try:
            lines = port_file.read_text().split("\n")
            if len(lines) >= 2 and lines[0].strip().isdigit() and lines[1].strip():
                return f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}"
        except OSError:
            pass
        await asyncio.sleep(0.02)
    raise CdpError(f"chromium did not open its DevTools port within {timeout:g} s")


async def load_once(chromium: str, url: str, timeout: float = 30.0) -> dict[str, Any]:
    """One cold page load in a fresh browser; returns the metric values or an ``error``."""
    profile = Path(tempfile.mkdtemp(prefix="sluicegate-bench-chromium-"))
    proc = subprocess.Popen(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    out: dict[str, Any] = {"url": url}
    try:
        ws_url = await _devtools_url(profile, proc, 20.0)
        async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, max_msg_size=0) as ws:
            cdp = Cdp(ws)
            try:
                out.update(await _navigate(cdp, url, timeout))
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(cdp.call("Browser.close"), 2.0)
                await cdp.close()
    except (CdpError, TimeoutError, aiohttp.ClientError, OSError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    finally:
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        shutil.rmtree(profile, ignore_errors=True)
    return out


async def _navigate(cdp: Cdp, url: str, timeout: float) -> dict[str, Any]:
    targets = await cdp.call("Target.getTargets")
    pages = [t for t in targets.get("targetInfos", []) if t.get("type") == "page"]
    if pages:
        target_id = pages[0]["targetId"]
    else:
        target_id = (await cdp.call("Target.createTarget", {"url": "about:blank"}))["targetId"]
    session = (await cdp.call("Target.attachToTarget", {"targetId": target_id, "flatten": True}))["sessionId"]
    await cdp.call("Page.enable", session=session)
    deadline = time.monotonic() + timeout
    nav = await cdp.call("Page.navigate", {"url": url}, session=session)
    if nav.get("errorText"):
        return {"error": f"navigation failed: {nav['errorText']}"}
    await cdp.wait_event("Page.loadEventFired", deadline)
    # loadEventEnd and the paint entries may land a little after the load event
    data: dict[str, Any] = {}
    settle = min(deadline, time.monotonic() + 3.0)
    while True:
        res = await cdp.call("Runtime.evaluate", {"expression": _TIMINGS_JS, "returnByValue": True},
                             session=session)
        data = json.loads(res["result"]["value"])
        nav_t = data.get("nav") or {}
        ready = nav_t.get("loadEventEnd", 0) > 0 and "first-contentful-paint" in data["paint"]
        if ready or time.monotonic() >= settle:
            break
        await asyncio.sleep(0.05)
    nav_t = data.get("nav") or {}
    paint = data.get("paint", {})

    def pos(value: Any) -> float | None:
        return float(value) if isinstance(value, int | float) and value > 0 else None

    status = nav_t.get("responseStatus")
    return {
        "ttfb_ms": pos(nav_t.get("responseStart")),
        "first_paint_ms": pos(paint.get("first-paint")),
        "fcp_ms": pos(paint.get("first-contentful-paint")),
        "dcl_ms": pos(nav_t.get("domContentLoadedEventEnd")),
        "dom_complete_ms": pos(nav_t.get("domComplete")),
        "load_ms": pos(nav_t.get("loadEventEnd")),
        "status": int(status) if isinstance(status, int | float) and status else None,
        "transfer_bytes": nav_t.get("transferSize"),
        "protocol": nav_t.get("nextHopProtocol"),
    }


async def measure(
    urls: Sequence[str],
    n: int,
    *,
    labels: Sequence[str] | None = None,
    chromium: str | None = None,
    timeout: float = 30.0,
    progress: Progress | None = None,
    result: Result | None = None,
) -> Result:
    """Load every URL ``n`` times, interleaved; samples go to ``labels`` (default: the URLs)."""
    binary = find_chromium(chromium)
    names = list(labels or urls)
    if result is None:
        result = Result("browser", {"urls": list(urls), "n": n, "timeout_s": timeout})
    result.settings["chromium"] = binary
    result.settings["chromium_version"] = _version(binary)
    result.settings["chromium_flags"] = [*CHROMIUM_FLAGS, "--user-data-dir=<fresh temp dir>"]
    for name in names:
        for metric, _title in METRICS:
            result.samples.setdefault(name, {}).setdefault(metric, [])
    runs = result.extra.setdefault("browser_runs", {})
    pairs = list(zip(urls, names, strict=True))
    total, done = n * len(pairs), 0
    for i in range(n):
        for url, name in pairs if i % 2 == 0 else list(reversed(pairs)):
            sample = await load_once(binary, url, timeout)
            runs.setdefault(name, []).append(sample)
            if "error" not in sample:
                for metric, _title in METRICS:
                    result.add(name, metric, sample.get(metric))
            done += 1
            if progress:
                progress.update(done / total, f"{done}/{total} {name[:50]}")
    if progress:
        progress.done()
    return result


def _version(binary: str) -> str:
    try:
        return subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10,
                              check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def render(result: Result, labels: Sequence[str]) -> str:
    from sluicegate.bench.compare import compare_labels
    from sluicegate.bench.compare import render as render_delta

    out: list[str] = []
    runs = result.extra.get("browser_runs", {})
    for label in labels:
        metrics = result.samples.get(label, {})
        errors = [r["error"] for r in runs.get(label, []) if "error" in r]
        ok = len(runs.get(label, [])) - len(errors)
        statuses = sorted({str(r.get("status")) for r in runs.get(label, []) if "error" not in r})
        out.append(
            f"{label}  ({ok} page loads; status {', '.join(statuses) or '-'}"
            + (f"; {len(errors)} failed: {errors[0]}" if errors else "")
            + ")"
        )
        rows = []
        for metric, title in METRICS:
            stats = describe(metrics.get(metric, []))
            if stats["n"]:
                rows.append([title + " ms", *(fmt_num(stats[k], 1) for k in ("median", "p90", "min", "max"))])
        if rows:
            out.append(table(["metric", "median", "p90", "min", "max"], rows))
        out.append("")
    if len(labels) == 2:
        rows_d = compare_labels(result, labels[0], result, labels[1], [m for m, _ in METRICS])
        if rows_d:
            out.append(f"delta (B = {labels[1]} vs A = {labels[0]}):")
            out.append(render_delta(rows_d, labels[0], labels[1], show_label=False))
    return "\n".join(out).rstrip() + "\n"
