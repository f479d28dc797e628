"""``bench stream-ab``: the same origin behind sluicegate twice, streamed vs buffered.

"stream" is ``sluicegate serve`` as shipped; "buffered" is the same application wrapped by
``sluicegate.dev.buffered`` (each response held whole, then sent with its length: what a buffering
proxy does). Writes both configs to a temp dir, starts both on two free ports, then measures the origin
directly and both proxies with ``ttfb`` (interleaved) and, unless disabled, the browser timings; prints
per-mode tables and the stream-vs-buffered delta table.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from sluicegate.bench import browser, ttfb
from sluicegate.bench.compare import compare_labels
from sluicegate.bench.compare import render as render_delta
from sluicegate.bench.probe import Target
from sluicegate.bench.proc import ServeError, Server, free_port, serve_argv
from sluicegate.bench.report import Progress
from sluicegate.bench.results import Result

MODES = ("stream", "buffered")

CONFIG = """\
# written by `sluicegate bench stream-ab`
[server]
host = "127.0.0.1"
port = {port}
workers = 1

[publisher]
origin_url = "{origin}"
public_hosts = ["*"]
"""


class AbError(Exception):
    pass


def buffered_argv(config: Path, port: int) -> list[str]:
    """The buffered side: the same config under ``sluicegate.dev.buffered``."""
    return [sys.executable, "-m", "sluicegate.dev.buffered", "--config", str(config), "--port", str(port)]


def write_config(directory: Path, mode: str, origin: str, port: int) -> Path:
    path = directory / f"{mode}.toml"
    path.write_text(CONFIG.format(port=port, origin=origin.replace('"', '\\"')))
    return path


def run(
    *,
    origin: str,
    path: str = "/",
    n: int = 20,
    browser_n: int = 8,
    with_browser: bool = True,
    serve_cmd: str | None = None,
    chromium: str | None = None,
    timeout: float = 30.0,
    progress: Progress | None = None,
) -> Result:
    try:
        Target.parse(origin)
    except ValueError as exc:
        raise AbError(str(exc)) from exc
    if not path.startswith("/"):
        path = "/" + path
    chromium_path = browser.find_chromium(chromium) if with_browser else None  # fail before starting
    workdir = Path(tempfile.mkdtemp(prefix="sluicegate-bench-ab-"))
    servers: list[Server] = []
    try:
        for mode in MODES:
            port = free_port()
            config = write_config(workdir, mode, origin.rstrip("/"), port)
            argv = buffered_argv(config, port) if mode == "buffered" else serve_argv(config, port, serve_cmd)
            server = Server(argv, port, workdir / f"{mode}.log", f"sluicegate ({mode})")
            servers.append(server)
            server.start()
        for server in servers:
            server.wait_ready(path)
        origin_url = origin.rstrip("/") + path
        result = Result("stream-ab", {
            "origin": origin, "path": path, "n": n, "browser_n": browser_n if with_browser else 0,
            "modes": {s.name: {"url": s.url + path, "argv": s.argv} for s in servers},
            "configs": {m: (workdir / f"{m}.toml").read_text() for m in MODES},
        })
        specs = [ttfb.RequestSpec(url=s.url + path, label=m) for m, s in zip(MODES, servers, strict=True)]
        specs.append(ttfb.RequestSpec(url=origin_url, label="origin"))
        asyncio.run(ttfb.run_specs(result, specs, n, timeout=timeout, progress=progress))
        if with_browser:
            asyncio.run(browser.measure(
                [s.url + path for s in servers], browser_n, labels=list(MODES), chromium=chromium_path,
                timeout=timeout, progress=progress, result=result,
            ))
        return result
    except ServeError as exc:
        raise AbError(str(exc)) from exc
    except browser.ChromiumMissing as exc:
        raise AbError(str(exc)) from exc
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def render(result: Result) -> str:
    out = [ttfb.render(result, ["origin", *MODES])]
    metrics = [m for m, _ in ttfb.METRICS if m not in ("dns_ms", "connect_ms", "tls_ms", "bytes")]
    if result.settings.get("browser_n"):
        out.append(browser.render(result, list(MODES)).split("delta (")[0].rstrip() + "\n")
        metrics += [m for m, _ in browser.METRICS]
    rows = compare_labels(result, "buffered", result, "stream", metrics)
    out.append('stream vs buffered (A = mode "buffered", B = mode "stream"; negative delta = stream sooner):')
    out.append(render_delta(rows, "buffered", "stream", show_label=False))
    return "\n".join(out).rstrip() + "\n"
