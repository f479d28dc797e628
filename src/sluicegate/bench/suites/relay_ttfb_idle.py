"""``bench relay-ttfb --idle``: what a request costs the worker after the worker was idle, fresh connection or
keep-alive, and what an idle worker costs (issue 19, row 6: why the first request on a fresh connection to an idle
worker costs several times a warm keep-alive request).

What it measures: one origin (``dev.origin.fast``), one ``sluicegate serve`` with one worker per build (this tree;
``--idle-base DIR`` adds a second proxy whose interpreter gets ``PYTHONPATH=DIR``, e.g. a ``build_mypyc.py
--target`` install of main), and the minimal forwarder (``bench.lab.forwarder``, the floor). For each idle gap
(``--gaps``, seconds the client sleeps before a request) and each connection kind (``fresh``: connect, GET,
read, close; ``keep-alive``: one connection, a GET after each gap), the client GETs ``/bin?size=2048``
(PassThrough, 2 KB) and reads the server process's main-thread CPU (``/proc/PID/schedstat``) just before the
request and after the response's last byte: the worker's CPU for that request, kernel loopback work included.
Targets and kinds rotate every round (one request each), so every figure of a round shares the machine's state.
Then, per proxy, the idle worker: its CPU per second and its wake-ups (voluntary context switches) per second
over ``--idle-s`` seconds with nothing to do.

Reading it: ``fresh - keep-alive`` at the same gap is the per-connection cost (accept, protocol and parser,
socket options and addresses, close); the growth with the gap at the same kind is the cost of being woken
cold (the worker's code and data evicted by the neighbours while it slept: no hardware counters on this VM, so
measured as CPU time, the same growth in the floor). Run: ``sluicegate bench relay-ttfb --idle [--idle-base
/tmp/base-inst]`` -> ``bench/results/publisher-ttfb-idle.json``.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from sluicegate.bench import lab

REQUEST = b"GET /bin?size=2048 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"


def _cpu_ns(pid: int) -> int:
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def _wakeups(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    return 0


def _read_response(s: socket.socket) -> None:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = s.recv(65536)
        if not data:
            raise RuntimeError("connection closed before the response head")
        buf += data
    head, _, body = buf.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    got = len(body)
    while got < length:
        data = s.recv(65536)
        if not data:
            raise RuntimeError("connection closed inside the body")
        got += len(data)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head[:80].decode("latin-1"))


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _one(port: int, pid: int, keep: socket.socket | None) -> float:
    """The server's CPU (µs) for one GET: fresh connection when ``keep`` is None."""
    before = _cpu_ns(pid)
    s = keep or _connect(port)
    s.sendall(REQUEST % port)
    _read_response(s)
    cpu = (_cpu_ns(pid) - before) / 1000
    if keep is None:
        s.close()
    return cpu


def run(gaps: list[float], rounds: int, idle_s: float, base: str = "") -> dict[str, Any]:
    result: dict[str, Any] = {"gaps_s": gaps, "rounds": rounds, "request": REQUEST.decode().split("\r\n")[0]}
    with tempfile.TemporaryDirectory(prefix="sg-bench-idle-") as tmp, lab.Procs() as procs:
        d = Path(tmp)
        op = lab.free_port()
        lab.start_fast_origin(procs, op, d, d / "origin.log")
        pids: dict[str, int] = {}
        ports: dict[str, int] = {}
        builds = {"proxy": os.environ.copy()}
        if base:
            builds["base"] = {**os.environ, "PYTHONPATH": base}
        for name, env in builds.items():
            port = lab.free_port()
            cfg = lab.write_sluicegate_config(d / f"{name}.toml", origin_port=op, proxy_port=port)
            argv = [lab.PY, "-m", "sluicegate", "serve", "--config", str(cfg), "--port", str(port), "--workers", "1"]
            proc = procs.add(lab.Proc(name, argv, d / f"{name}.log", env=env))
            lab.wait_http(port, "/_sluicegate/health", proc)
            workers = lab.children_map().get(proc.pid, [])
            if len(workers) != 1:
                raise RuntimeError(f"{name}: expected one worker, found {workers}")
            pids[name], ports[name] = workers[0], port
        fp = lab.free_port()
        fwd = procs.add(lab.Proc("floor", [lab.PY, "-m", "sluicegate.bench.lab.forwarder", "--port", str(fp),
                                           "--to", str(op)], d / "floor.log"))
        lab.wait_http(fp, "/health", fwd)
        pids["floor"], ports["floor"] = fwd.pid, fp
        keep = {t: _connect(ports[t]) for t in ports}
        for t in ports:  # warm-up: every path once per kind
            for _ in range(3):
                _one(ports[t], pids[t], None)
                _one(ports[t], pids[t], keep[t])
        cells = [(t, kind) for t in ports for kind in ("fresh", "keep-alive")]
        samples: dict[str, dict[str, list[float]]] = {f"{t} {k}": {str(g): [] for g in gaps} for t, k in cells}
        for r in range(rounds):
            lab.log(f"round {r + 1}/{rounds} (load avg 1 min {lab.loadavg1():.2f})")
            for g in gaps:
                k = r % len(cells)
                for t, kind in cells[k:] + cells[:k]:
                    time.sleep(g)
                    samples[f"{t} {kind}"][str(g)].append(_one(ports[t], pids[t], keep[t] if kind != "fresh" else None))
        for s in keep.values():
            s.close()
        time.sleep(0.5)
        idle: dict[str, dict[str, float]] = {}
        before = {t: (_cpu_ns(p), _wakeups(p)) for t, p in pids.items()}
        time.sleep(idle_s)
        for t, p in pids.items():
            idle[t] = {"cpu_us_per_s": (_cpu_ns(p) - before[t][0]) / 1000 / idle_s,
                       "wakeups_per_s": (_wakeups(p) - before[t][1]) / idle_s}
    result["cpu_us"] = {cell: {g: lab.summary(xs) for g, xs in by_gap.items()} for cell, by_gap in samples.items()}
    result["samples_us"] = samples
    result["idle"] = idle
    return result


def report(res: dict[str, Any]) -> str:
    gaps = [str(g) for g in res["gaps_s"]]
    rows = [[cell, *(f"{res['cpu_us'][cell][g]['median']:.0f}" for g in gaps)] for cell in res["cpu_us"]]
    out = [f"Server CPU per request ({res['request']}, µs, median of {res['rounds']}) by idle gap before it\n",
           lab.table(["server, connection", *(f"gap {float(g) * 1000:g} ms" for g in gaps)], rows), "",
           "Idle: " + "; ".join(f"{t} {v['cpu_us_per_s']:.0f} µs CPU/s, {v['wakeups_per_s']:.1f} wake-ups/s"
                                for t, v in res["idle"].items())]
    return "\n".join(out)
