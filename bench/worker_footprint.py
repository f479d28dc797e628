"""An idle worker's footprint (docs/operations.md, "An idle worker, import by import").

``python bench/worker_footprint.py idle VENV [VENV ...] --rounds 3``: for each round and each venv in turn
(alternating), ``VENV/bin/sluicegate serve --workers 1`` with the image benchmark's config (its origin need not
exist), waits for the supervisor's "serving on" line (not ``/status``: that imports every compiled module into the
supervisor), then 2 s, and prints the worker's VmRSS, Pss, Pss_Anon, its CPU time so far (start-up) and the
supervisor's. PSS splits a page between the processes that map it: run nothing else from the same checkout.

``python bench/worker_footprint.py imports``: in this interpreter, the worker's imports step by step, with the
resident set and anonymous memory after each (run it with the venv's python, ``PROMETHEUS_MULTIPROC_DIR`` set).
"""

from __future__ import annotations

import argparse
import importlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CONFIG = """
[server]
access_log = "off"

[publisher]
origin_url = "http://127.0.0.1:9"
public_hosts = ["*"]

[[publisher.routes]]
name = "img"
prefix = "/img/"
kind = "asset"
origin_url = "http://127.0.0.1:9"
path_pattern = "^/img/(.*)$"
target_path = "/$1"
image_optimizer = { enabled = true, profile_set = "bench" }

[image_optimizer]
workers = 2
queue = 64
max_source_bytes = 134217728

[image_optimizer.profile_sets.bench]
default_profile = "w800"
widths = [800]

[image_optimizer.profile_sets.bench.profiles.w800]
width = 800
quality = 80
format = "webp"

[admin]
listen = "127.0.0.1:%d"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _field(pid: int | str, name: str, f: str = "status") -> float:
    for line in Path(f"/proc/{pid}/{f}").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu(pid: int) -> float:
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def idle_once(venv: str, tmp: Path) -> dict[str, float]:
    conf = tmp / "worker.toml"
    conf.write_text(CONFIG % _free_port())
    log = tmp / "serve.log"
    with open(log, "w") as err:
        p = subprocess.Popen([f"{venv}/bin/sluicegate", "serve", "--config", str(conf), "--port", str(_free_port()),
                              "--workers", "1"], stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 60
        while " serving on " not in log.read_text():
            if time.monotonic() > deadline or p.poll() is not None:
                raise SystemExit(f"{venv}: not serving: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        time.sleep(2.0)
        children = Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split()
        w = next(int(c) for c in children if b"sluicegate.server.worker" in Path(f"/proc/{c}/cmdline").read_bytes())
        return {"rss": _field(w, "VmRSS"), "pss": _field(w, "Pss", "smaps_rollup"),
                "anon": _field(w, "Pss_Anon", "smaps_rollup"), "cpu_s": _cpu(w),
                "sup_rss": _field(p.pid, "VmRSS"), "sup_pss": _field(p.pid, "Pss", "smaps_rollup")}
    finally:
        p.terminate()
        p.wait(20)


def idle(venvs: list[str], rounds: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        for r in range(rounds):
            for venv in venvs:
                row = idle_once(venv, Path(d))
                print(f"round {r} {venv}: " + " ".join(f"{k}={v:.2f}" for k, v in row.items()), flush=True)
    print("load average", " ".join(f"{x:.2f}" for x in os.getloadavg()))


def imports() -> None:
    def snap() -> tuple[float, float]:
        return _field("self", "VmRSS"), _field("self", "Pss_Anon", "smaps_rollup")

    last = list(snap())
    print(f"| interpreter | {last[0]:.1f} | | |")
    state: dict[str, Any] = {}

    def step(name: str, fn: Callable[[], object]) -> None:
        fn()
        r, a = snap()
        print(f"| {name} | {r:.1f} | {r - last[0]:+.1f} | {a - last[1]:+.1f} | {len(sys.modules)} modules |")
        last[:] = [r, a]

    def imp(*names: str) -> Callable[[], object]:
        return lambda: [importlib.import_module(n) for n in names]

    def lean() -> None:
        try:
            importlib.import_module("sluicegate.server.lean").install()
        except ImportError:  # a checkout before it
            importlib.import_module("sluicegate")

    def build() -> None:
        from sluicegate.config import load_settings_text
        from sluicegate.server.app import SluicegateApp
        from sluicegate.server.h2 import Http2Switch

        settings = load_settings_text(CONFIG % 1, "worker.toml")
        state["app"] = SluicegateApp(settings)
        Http2Switch.from_settings(state["app"], settings)

    def start() -> None:
        import asyncio

        asyncio.run(state["app"].startup())

    step("argparse, logging, socket, signal", imp("argparse", "logging", "socket", "signal"))
    step("sluicegate (+ server.lean)", lean)
    step("asyncio (ssl)", imp("asyncio"))
    step("uvloop", imp("uvloop"))
    step("server.malloc (ctypes), tune()", lambda: importlib.import_module("sluicegate.server.malloc").tune())
    step("prometheus-client (observability.mpvalue)",
         lambda: importlib.import_module("sluicegate.observability.mpvalue").install())
    step("pydantic", imp("pydantic"))
    step("the config model", imp("sluicegate.config"))
    step("publisher.app", imp("sluicegate.publisher.app"))
    step("publisher.routes, images.serve", imp("sluicegate.publisher.routes", "sluicegate.images.serve"))
    step("server.app, server.observe", imp("sluicegate.server.app"))
    step("publisher.websocket", imp("sluicegate.publisher.websocket"))
    step("server.h1, server.h2, server.tls", imp("sluicegate.server.h1.serve", "sluicegate.server.h1.protocol",
                                                  "sluicegate.server.h2", "sluicegate.server.tls"))
    step("config load + app build", build)
    step("app.startup", start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("idle")
    a.add_argument("venvs", nargs="+")
    a.add_argument("--rounds", type=int, default=3)
    sub.add_parser("imports")
    args = ap.parse_args()
    if args.cmd == "idle":
        idle(args.venvs, args.rounds)
    else:
        imports()


if __name__ == "__main__":
    main()
