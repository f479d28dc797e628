"""HTTP/1.1 vs HTTP/2 under each ASGI serving stack, same app, same routes: ``sluicegate bench stacks``.

Starts one origin (aiohttp, in this process: a 2 KB HTML page that the proxy rewrites and a 64 KB binary it
passes through), makes a throwaway certificate (``openssl``), and runs sluicegate's ASGI app
(``server.app:create_app``, 1 worker) under uvicorn (h1 only), hypercorn and granian (h1 and h2 over TLS), and
``sluicegate serve`` itself (1 worker: uvicorn's h1 protocol with our guard, and our own h2, ``server/h2``), one
at a time, rounds interleaved. Load: ``h2load`` (Debian ``nghttp2-client``), ``--h1`` for HTTP/1.1; h2 runs
``-m`` streams per connection. Reports per stack, protocol and route: req/s, mean TTFB (h2load's "time to 1st
byte", per connection: the first response) and the server's CPU time per request (utime+stime of its process
tree, /proc) — the figure that stays meaningful on a shared machine. Writes JSON + a markdown table.
Must not know the proxy's internals: it only starts servers and reads their CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

STACKS = ("sluicegate", "uvicorn", "hypercorn", "granian")
ROUTES = {"page": "/page", "asset": "/asset"}
_PAGE = (b"<!doctype html><html><head><title>t</title></head><body>"
         + b'<p><a href="http://ORIGIN/x">link</a> text text text</p>' * 30 + b"</body></html>")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_origin(port: int) -> threading.Thread:
    from aiohttp import web

    page = _PAGE.replace(b"ORIGIN", f"127.0.0.1:{port}".encode())
    asset = os.urandom(64 * 1024)

    async def h_page(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html")

    async def h_asset(request: web.Request) -> web.Response:
        return web.Response(body=asset, content_type="application/octet-stream")

    ready = threading.Event()

    def run() -> None:
        loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_get("/page", h_page)
        app.router.add_get("/asset", h_asset)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start())
        ready.set()
        loop.run_forever()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    ready.wait(10)
    return t


def make_cert(d: Path) -> tuple[Path, Path]:
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def write_config(work: Path, stack: str, port: int, origin_port: int, cert: Path, key: Path) -> Path:
    """The app's config; ``sluicegate serve`` terminates TLS itself, from ``[server.tls]``."""
    cfg = work / f"{stack}.toml"
    tls = f'[server.tls]\ncert_file = "{cert}"\nkey_file = "{key}"\n' if stack == "sluicegate" else ""
    cfg.write_text(f'[server]\nport = {port}\n{tls}[admin]\nlisten = ""\n[publisher]\n'
                   f'origin_url = "http://127.0.0.1:{origin_port}"\npublic_hosts = ["localhost:{port}"]\n')
    return cfg


def server_command(stack: str, port: int, cert: Path, key: Path, cfg: Path | None = None) -> list[str]:
    py = sys.executable
    app = "sluicegate.server.app:create_app"
    if stack == "sluicegate":
        return [py, "-m", "sluicegate", "serve", "--config", str(cfg), "--port", str(port), "--workers", "1"]
    if stack == "uvicorn":
        return [py, "-m", "uvicorn", "--factory", app, "--loop", "uvloop", "--http", "httptools", "--port", str(port),
                "--ssl-certfile", str(cert), "--ssl-keyfile", str(key), "--no-access-log", "--log-level", "warning"]
    if stack == "hypercorn":
        return [py, "-m", "hypercorn", f"{app}()", "-b", f"127.0.0.1:{port}", "--certfile", str(cert),
                "--keyfile", str(key), "-k", "uvloop", "--log-level", "warning"]
    if stack == "granian":
        return [py, "-m", "granian", "--interface", "asgi", "--factory", "--loop", "uvloop", "--http", "auto",
                "--port", str(port), "--ssl-certificate", str(cert), "--ssl-keyfile", str(key),
                "--log-level", "warning", app]
    raise ValueError(stack)


def _cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its children (process group)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    try:
        pids = subprocess.run(["pgrep", "-g", str(os.getpgid(pid))], capture_output=True, text=True).stdout.split()
    except (OSError, ProcessLookupError):
        pids = [str(pid)]
    for p in pids or [str(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    return total


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        r = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", f"https://localhost:{port}/page"],
                           capture_output=True, text=True)
        if r.stdout == "200":
            return
        time.sleep(0.2)
    raise RuntimeError("server did not answer 200 on /page")


_RPS = re.compile(r"finished in [\d.]+m?s, ([\d.]+) req/s")
_TTFB = re.compile(r"time to 1st byte:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)")
_DONE = re.compile(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored")
_SCALE = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def h2load(url: str, proto: str, n: int, conns: int, streams: int) -> dict[str, float]:
    cmd = ["h2load", "-n", str(n), "-c", str(conns), url]
    cmd += ["--h1"] if proto == "h1" else ["-m", str(streams)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300).stdout
    rps, ttfb, done = _RPS.search(out), _TTFB.search(out), _DONE.search(out)
    if not (rps and ttfb and done):
        raise RuntimeError(f"cannot read h2load output:\n{out}")
    return {
        "rps": float(rps.group(1)),
        "ttfb_mean_ms": float(ttfb.group(3)) * _SCALE[ttfb.group(4)],
        "succeeded": float(done.group(3)),
        "failed": float(done.group(4)) + float(done.group(5)),
    }


def run(n: int, conns: int, streams: int, rounds: int, stacks: list[str]) -> dict[str, Any]:
    for tool in ("h2load", "openssl", "curl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench stacks: {tool} not found (apt-get install -y nghttp2-client openssl curl)")
    work = Path(tempfile.mkdtemp(prefix="sg-stacks-"))
    cert, key = make_cert(work)
    origin_port = _free_port()
    start_origin(origin_port)
    samples: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    for _ in range(rounds):
        for stack in stacks:
            port = _free_port()
            cfg = write_config(work, stack, port, origin_port, cert, key)
            env = {**os.environ, "SLUICEGATE_CONFIG": str(cfg), "SLUICEGATE__SERVER__ACCESS_LOG": '"off"'}
            proc = subprocess.Popen(server_command(stack, port, cert, key, cfg), env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, start_new_session=True)
            try:
                _wait_ready(port, proc)
                for proto in ("h1",) if stack == "uvicorn" else ("h1", "h2"):
                    for route, path in ROUTES.items():
                        cpu0 = _cpu_seconds(proc.pid)
                        m = h2load(f"https://localhost:{port}{path}", proto, n, conns, streams)
                        cpu = _cpu_seconds(proc.pid) - cpu0
                        m["cpu_us_per_req"] = cpu / max(m["succeeded"], 1) * 1e6
                        samples.setdefault((stack, proto, route), []).append(m)
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
    rows = []
    for (stack, proto, route), ms in samples.items():
        rows.append({
            "stack": stack, "proto": proto, "route": route, "rounds": len(ms),
            **{k: statistics.median(m[k] for m in ms) for k in ("rps", "ttfb_mean_ms", "cpu_us_per_req")},
            "failed": sum(m["failed"] for m in ms),
        })
    return {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load": os.getloadavg(),
            "n": n, "conns": conns, "streams": streams, "rows": rows}


async def _probe_async(stacks: list[str]) -> list[dict[str, Any]]:
    """The streaming guarantees per stack and protocol, seen by curl: does the head leave at the origin's head
    (not with the first body byte), and does an origin failure after the commit reach the client as an abort
    (curl exit 18 = partial body on h1, 92 = stream reset on h2), and how fast."""
    from sluicegate.bench.suites.faultnet import FaultyOrigin

    origin = FaultyOrigin()
    await origin.start()
    work = Path(tempfile.mkdtemp(prefix="sg-probe-"))
    cert, key = make_cert(work)
    rows = []
    try:
        for stack in stacks:
            port = _free_port()
            cfg = write_config(work, stack, port, origin.port, cert, key)
            env = {**os.environ, "SLUICEGATE_CONFIG": str(cfg), "SLUICEGATE__SERVER__ACCESS_LOG": '"off"'}
            proc = subprocess.Popen(server_command(stack, port, cert, key, cfg), env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            try:
                await asyncio.to_thread(_wait_ready, port, proc)
                for proto in ("--http1.1",) if stack == "uvicorn" else ("--http1.1", "--http2"):
                    def curl(path: str, proto: str = proto, port: int = port) -> tuple[int, list[str]]:
                        r = subprocess.run(["curl", "-sk", proto, "-o", "/dev/null", "-w",
                                            "%{http_version} %{time_starttransfer} %{time_total}",
                                            f"https://localhost:{port}{path}"], capture_output=True, text=True)
                        return r.returncode, r.stdout.split()
                    _, trickle = await asyncio.to_thread(curl, "/trickle/2")
                    rc, cut = await asyncio.to_thread(curl, "/cl-long/50000")
                    rows.append({"stack": stack, "proto": trickle[0], "head_s": float(trickle[1]),
                                 "abort_rc": rc, "abort_s": float(cut[2])})
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
    finally:
        await origin.close()
    return rows


def probe_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| stack | proto | head sent after (origin head at 0, first body byte at 1 s) | origin fails after "
             "commit: curl exit (18 partial, 92 stream reset), after s |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['stack']} | {r['proto']} | {r['head_s']:.3f} s | {r['abort_rc']}, {r['abort_s']:.2f} s |")
    return "\n".join(lines) + "\n"


def markdown(result: dict[str, Any]) -> str:
    lines = [f"h2load -n {result['n']} -c {result['conns']} (h2: -m {result['streams']}), TLS, 1 worker, "
             f"medians of {result['rows'][0]['rounds'] if result['rows'] else 0} interleaved rounds, "
             f"{result['when']}, load {result['load'][0]:.1f}", "",
             "| stack | proto | route | req/s | mean TTFB ms | server CPU µs/req | failed |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        if r["failed"]:  # h2load could not count these responses as answers: no figures
            lines.append(f"| {r['stack']} | {r['proto']} | {r['route']} | n/a | n/a | n/a | {r['failed']:.0f} |")
            continue
        lines.append(f"| {r['stack']} | {r['proto']} | {r['route']} | {r['rps']:,.0f} | {r['ttfb_mean_ms']:.1f} | "
                     f"{r['cpu_us_per_req']:.0f} | {r['failed']:.0f} |")
    return "\n".join(lines) + "\n"


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("-n", type=int, default=3000, help="requests per measurement")
    ap.add_argument("-c", "--conns", type=int, default=16, help="connections")
    ap.add_argument("-m", "--streams", type=int, default=8, help="h2 streams per connection")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--stacks", default=",".join(STACKS))
    ap.add_argument("--json", default="", help="write the result here")
    ap.add_argument("--probe", action="store_true", help="instead: the streaming guarantees per stack (curl)")


def run_args(args: argparse.Namespace) -> int:
    if args.probe:
        print(probe_markdown(asyncio.run(_probe_async([s for s in args.stacks.split(",") if s]))))
        return 0
    result = run(args.n, args.conns, args.streams, args.rounds, [s for s in args.stacks.split(",") if s])
    print(markdown(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 1 if any(r["failed"] for r in result["rows"] if r["stack"] != "hypercorn" or r["proto"] != "h1") else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sluicegate bench stacks", description=(__doc__ or "").split("\n")[0])
    add_arguments(ap)
    return run_args(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
