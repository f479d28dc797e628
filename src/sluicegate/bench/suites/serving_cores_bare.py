"""``bench serving-cores-bare``: the serving core alone, native vs uvicorn, on a trivial ASGI app (CPU per request).

What it measures: one process per core serving a fixed answer (2 KB with ``Content-Length``; 2 KB sent as
three chunks without one: chunked framing; an SSE stream of 31 events, one per loop turn) from a small ASGI
app, so the figure is the serving core's own
cost per request (parse, scope, task, ``receive``/``send``, framing, writes) and nothing of sluicegate's faces.
``wrk -t2 -c64`` per page, interleaved rounds (order reversed every round); median req/s and median process CPU
µs per request (steadier than req/s on a shared machine); the native/uvicorn ratio of each.

Run: ``sluicegate bench serving-cores-bare`` (about 2 minutes; ``--rounds``, ``--duration``)
-> ``bench/results/serving-cores-bare.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from sluicegate.bench import lab
from sluicegate.bench.suites.throughput import run_wrk

BODY = b"x" * 2048
CORES = ("uvicorn", "native")
PAGES = ("/length", "/chunked", "/sse")
EVENT = b'data: {"choices":[{"delta":{"content":"token"},"index":0}],"object":"chat.completion.chunk"}\n\n'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/sse":  # an LLM stream: 31 events, one per loop turn
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for _ in range(30):
            await send({"type": "http.response.body", "body": EVENT, "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
        return
    if scope["path"] == "/chunked":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        for part in (BODY[:700], BODY[700:1400]):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": BODY[1400:]})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream"), (b"content-length", b"2048")]})
    await send({"type": "http.response.body", "body": BODY})


def serve(core: str, port: int) -> None:
    import uvloop

    if core == "native":
        from sluicegate.server.h1.protocol import ServerState
        from sluicegate.server.h1.serve import NativeServer

        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(2048)
        state = ServerState(app, header_timeout=20.0, keepalive_timeout=30.0, head_limit=131072)
        uvloop.run(NativeServer(state, ready_fd=-1, shutdown_timeout=1.0, ssl_context=None).serve(sock))
        return
    import uvicorn

    from sluicegate.server.h1guard import guarded_protocol

    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http=guarded_protocol(20.0), lifespan="off",
                access_log=False, server_header=False, date_header=False, log_level="warning", backlog=2048)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="sluicegate bench serving-cores-bare", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--serve", nargs=2, metavar=("CORE", "PORT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return {}
    tools = lab.ensure_apt({"wrk": "wrk"})
    runs: dict[str, dict[str, list[dict[str, float]]]] = {c: {p: [] for p in PAGES} for c in CORES}
    with tempfile.TemporaryDirectory(prefix="sg-bench-cores-") as tmp, lab.Procs() as procs:
        for rnd in range(args.rounds):
            for core in (CORES if rnd % 2 == 0 else CORES[::-1]):
                port = lab.free_port()
                proc = procs.add(lab.Proc(core, [sys.executable, "-m", "sluicegate.bench.suites.serving_cores_bare",
                                                 "--serve", core, str(port)], Path(tmp) / f"{core}.log"))
                lab.wait_http(port, "/length", proc)
                for page in PAGES:
                    url = f"http://127.0.0.1:{port}{page}"
                    run_wrk(tools["wrk"], url, 1.0)
                    cpu0 = lab.tree_cpu_s(proc.pid)
                    res, _ = run_wrk(tools["wrk"], url, args.duration)
                    cpu = lab.tree_cpu_s(proc.pid) - cpu0
                    row = {"rps": res["rps"], "p99_ms": res["p99_ms"],
                           "cpu_us_per_req": round(1e6 * cpu / max(1, res["requests"]), 2)}
                    runs[core][page].append(row)
                    lab.log(f"round {rnd} {core:8} {page:9} {row['rps']:9.0f} req/s {row['cpu_us_per_req']:7.1f} us "
                            f"CPU/req  p99 {row['p99_ms']} ms")
                procs.stop(proc)
    summary = {c: {p: {"rps_median": statistics.median(r["rps"] for r in rows),
                       "cpu_us_per_req_median": statistics.median(r["cpu_us_per_req"] for r in rows)}
                   for p, rows in by_page.items()} for c, by_page in runs.items()}
    ratios = {p: {"native_vs_uvicorn_cpu_per_req": round(summary["native"][p]["cpu_us_per_req_median"]
                                                         / summary["uvicorn"][p]["cpu_us_per_req_median"], 3),
                  "native_vs_uvicorn_rps": round(summary["native"][p]["rps_median"]
                                                 / summary["uvicorn"][p]["rps_median"], 3)} for p in PAGES}
    print(f"\n{'page':10} {'uvicorn us/req':>15} {'native us/req':>14} {'CPU ratio':>10} {'req/s ratio':>12}")
    for p in PAGES:
        print(f"{p:10} {summary['uvicorn'][p]['cpu_us_per_req_median']:15.1f} "
              f"{summary['native'][p]['cpu_us_per_req_median']:14.1f} "
              f"{ratios[p]['native_vs_uvicorn_cpu_per_req']:10.3f} {ratios[p]['native_vs_uvicorn_rps']:12.3f}")
    result = {"benchmark": "serving-cores-bare", "rounds": args.rounds, "duration_s": args.duration, "runs": runs,
              "summary": summary, "ratios": ratios, "machine": lab.machine(), "method": __doc__}
    lab.log(f"wrote {lab.write_json('serving-cores-bare', result)}")
    return result


if __name__ == "__main__":
    main()
