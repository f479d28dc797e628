"""CPU cost of the per-request observation path alone, in one process: ``server.observe.Observer`` driven the
way the ASGI app drives it (begin, wrap, started, request body read, response head + 2 KB body sent, finish),
with JSON access log + multi-process metrics on (values in mmap'ed files, as in a worker) against both off.

No sockets and no proxying: the figure is what observability adds per request, without the network noise of
``bench observability`` (a shared machine moves that one by ±20 % per pair). Every 8 requests the loop turns once,
as under load (the metrics are written once per turn). The access log goes to a regular file.

Run: ``sluicegate bench observe-path [--requests 20000] [--rounds 5]``; to measure another
revision, put its ``src`` first on ``PYTHONPATH`` (``sluicegate bench observability --before`` builds such a tree). Each
round runs "on" and "off" in fresh processes, alternately; prints µs of CPU per request (process time) and the
difference, and writes ``bench/results/publisher-observe-path.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import MutableMapping
from typing import Any

from sluicegate.bench.lab import write_json


def measure(mode: str, requests: int) -> float:
    tmp = tempfile.mkdtemp(prefix="sg-obs-path-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    if mode == "on":
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tmp
        from sluicegate.observability import mpvalue

        mpvalue.install()
    from sluicegate.config import load_settings
    from sluicegate.server.observe import Observer

    settings = load_settings(None)
    settings = settings.model_copy(update={
        "server": settings.server.model_copy(update={"access_log": "json" if mode == "on" else "off"}),
        "admin": settings.admin.model_copy(update={"metrics": mode == "on"}),
    })
    obs = Observer(settings)
    log_fd = os.open(os.path.join(tmp, "access.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    if obs.writer is not None:
        obs.writer.fd = log_fd
    headers = [(b"host", b"127.0.0.1:8080"), (b"user-agent", b"wrk/4.2"), (b"accept", b"*/*")]
    head = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]}
    body = {"type": "http.response.body", "body": b"x" * 2048, "more_body": False}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        return None

    async def one() -> None:
        scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/page2k.bin", "headers": headers,
                                 "client": ("127.0.0.1", 40000)}
        info = obs.begin(scope)
        recv, snd = obs.wrap(info, receive, send)
        obs.started(info, "publisher", scope)
        await recv()
        await snd(dict(head))
        await snd(body)
        info.route, info.kind, info.upstream_status, info.upstream_s = "pass_through", "binary", 200, 0.0008
        obs.finish(info, None)

    async def run(n: int) -> None:
        for i in range(n):
            await one()
            if i % 8 == 7:
                await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(run(2000))  # warm-up
    t0 = time.process_time()
    asyncio.run(run(requests))
    used = time.process_time() - t0
    obs.flush()
    return used * 1e6 / requests


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="sluicegate bench observe-path", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--child", choices=("on", "off"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(measure(args.child, args.requests))
        return
    rows: list[dict[str, Any]] = []
    for r in range(args.rounds):
        for mode in ("on", "off") if r % 2 == 0 else ("off", "on"):
            out = subprocess.run([sys.executable, "-m", __name__, "--child", mode, "--requests", str(args.requests)],
                                 capture_output=True, text=True, check=True).stdout
            rows.append({"round": r, "mode": mode, "cpu_us_per_req": float(out.strip().splitlines()[-1])})
    on: list[float] = sorted(r["cpu_us_per_req"] for r in rows if r["mode"] == "on")
    off: list[float] = sorted(r["cpu_us_per_req"] for r in rows if r["mode"] == "off")
    med_on, med_off = on[len(on) // 2], off[len(off) // 2]
    import sluicegate

    result = {"benchmark": "publisher-observe-path", "method": __doc__, "source": os.path.dirname(sluicegate.__file__),
              "requests": args.requests, "rows": rows,
              "summary": {"on_us": med_on, "off_us": med_off, "added_us": med_on - med_off},
              "load": os.getloadavg()}
    print(f"observation path, µs CPU per request (median of {args.rounds}): on {med_on:.2f}, off {med_off:.2f}, "
          f"added {med_on - med_off:.2f}  (source {result['source']}, load {os.getloadavg()[0]:.1f})")
    print(f"wrote {write_json('publisher-observe-path', result)}")


if __name__ == "__main__":
    main()
