"""The fault suite: ``python -m sluicegate.bench.suites.faults`` — resilience measured as figures, not asserted.

``sluicegate serve`` (2 workers, real process) sits between the clients of this module and ``faultnet``'s
misbehaving origin, with ``faultnet.FaultProxy`` (TCP fault injection) between sluicegate and the origin. Each
scenario sends requests whose exact response bytes are known and counts, per response: exact, visibly failed
(error status from the proxy, or a connection that ended before its framing said the body was complete),
**corrupted** (complete-looking with wrong bytes: must be 0) and **lost** (no answer and no close within the
time limit: must be 0); plus the server's max RSS (all processes, sampled every 50 ms) and the recovery time
(fault over -> the next exact answer; for the worker kill: -> the supervisor has 2 ready workers again).
Writes JSON and a markdown table; ``--soak`` adds the load-held run (``bench.soak``).
Must not know the proxy's internals: it sees what clients and the admin listener see.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sluicegate.bench.suites.faultnet import FaultProxy, FaultyOrigin, Mode, Outcome, fetch

CONFIG = """
[server]
host = "127.0.0.1"
port = {port}
workers = 2
access_log = "off"
shutdown_timeout = 5

[admin]
listen = "127.0.0.1:{admin}"

[publisher]
origin_url = "http://127.0.0.1:{origin}"
public_hosts = ["127.0.0.1:{port}"]

[timeouts]
connect = 2.0
first_byte = 3.0
idle = 2.0
client_header = 2.0

[inference]
path_prefix = "/llm"

[[inference.providers]]
name = "faulty"
kind = "openai-compatible"
base_url = "http://127.0.0.1:{origin}/v1"
api_key_env = "SG_FAULTS_PROVIDER_KEY"
timeouts = {{ connect = 2.0, first_byte = 2.0, idle = 2.0 }}

[[inference.models]]
name = "sse"
targets = [{{ provider = "faulty", model = "sse" }}]

[[inference.models]]
name = "429"
targets = [{{ provider = "faulty", model = "429" }}]

[[inference.models]]
name = "stall-head"
targets = [{{ provider = "faulty", model = "stall-head" }}]
"""
LLM_PATH = "/llm/v1/chat/completions"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``sluicegate serve`` in its own process group; RSS and worker pids read from /proc and /status."""

    def __init__(self, origin_port: int, work: Path) -> None:
        self.port, self.admin = free_port(), free_port()
        self.cfg = work / "faults.toml"
        self.cfg.write_text(CONFIG.format(port=self.port, admin=self.admin, origin=origin_port))
        self.log = work / "sluicegate.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "SG_FAULTS_PROVIDER_KEY": "fault-suite-provider-key-1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "sluicegate", "serve", "--config", str(self.cfg)],
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
                                     env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            st = self.status()
            if st and sum(1 for w in st["workers"] if w["ready"]) == 2:
                return
            time.sleep(0.1)
        raise RuntimeError(f"sluicegate did not start:\n{self.log.read_text(errors='replace')[-3000:]}")

    def status(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/status", timeout=2) as r:
                data: dict[str, Any] = json.loads(r.read())
                return data
        except (OSError, ValueError):
            return None

    def metric(self, name: str) -> float:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return -1.0
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name) and not line.startswith("#"))

    def rss(self) -> int:
        assert self.proc is not None
        total = 0
        try:
            pids = subprocess.run(["pgrep", "-g", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        except OSError:
            pids = []
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                continue
        return total

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


@dataclass
class Row:
    scenario: str
    expect: str  # what the clients must see: "exact" or "failed" (visibly) for the faulty requests
    outcomes: list[Outcome] = field(default_factory=list)
    max_rss_mb: float = 0.0
    recovery_s: float = 0.0
    note: str = ""
    extra_ok: bool = True  # a scenario's own condition beyond the verdicts

    def counts(self) -> dict[str, int]:
        c = {"exact": 0, "failed": 0, "corrupted": 0, "lost": 0}
        for o in self.outcomes:
            c[o.verdict] += 1
        return c

    def ok(self) -> bool:
        c = self.counts()
        if c["corrupted"] or c["lost"] or not self.extra_ok:
            return False
        return c["failed"] == 0 if self.expect == "exact" else True

    def as_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "expect": self.expect, "requests": len(self.outcomes), **self.counts(),
                "max_rss_mb": round(self.max_rss_mb, 1), "recovery_s": round(self.recovery_s, 3),
                "ok": self.ok(), "note": self.note,
                "failures": sorted({o.detail for o in self.outcomes if o.verdict != "exact" and o.detail})[:6]}


class Suite:
    def __init__(self, server: Server, origin: FaultyOrigin, proxy: FaultProxy, big_mb: int) -> None:
        self.server, self.origin, self.proxy, self.big_mb = server, origin, proxy, big_mb
        self.rss_max = 0

    async def _sample_rss(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.rss_max = max(self.rss_max, await asyncio.to_thread(self.server.rss))
            try:
                await asyncio.wait_for(stop.wait(), 0.05)
            except TimeoutError:
                pass

    async def many(self, paths: list[str], concurrency: int = 16, **kw: Any) -> list[Outcome]:
        sem = asyncio.Semaphore(concurrency)

        async def one(p: str) -> Outcome:
            async with sem:
                return await fetch(self.server.port, p, self.server.host, **kw)

        return list(await asyncio.gather(*(one(p) for p in paths)))

    async def recovery(self) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30:
            if (await fetch(self.server.port, "/body/65536", self.server.host, timeout=5)).verdict == "exact":
                return time.monotonic() - t0
            await asyncio.sleep(0.05)
        return float("inf")

    async def run(self, name: str, expect: str, body: Callable[[Row], Awaitable[None]],
                  mode: Mode | None = None, note: str = "") -> Row:
        row = Row(name, expect, note=note)
        self.rss_max = 0
        stop = asyncio.Event()
        sampler = asyncio.create_task(self._sample_rss(stop))
        self.proxy.mode = mode or Mode()
        try:
            await body(row)
        finally:
            self.proxy.mode = Mode()
            stop.set()
            await sampler
        if not row.recovery_s:
            row.recovery_s = await self.recovery()
        row.max_rss_mb = self.rss_max / 1e6
        print(f"  {name}: {row.counts()} rss {row.max_rss_mb:.0f} MB, recovery {row.recovery_s:.2f}s", flush=True)
        return row

    # ---- scenarios -------------------------------------------------------------------------------------
    async def all(self) -> list[Row]:
        rows = []
        big = self.big_mb * 1024 * 1024

        async def baseline(row: Row) -> None:
            paths = ["/body/262144"] * 40 + ["/page/32768"] * 20 + ["/chunked/100000"] * 20 + ["/sse"] * 10
            row.outcomes = await self.many(paths)

        rows.append(await self.run("baseline (256 KB, HTML page, chunked, SSE)", "exact", baseline))

        async def fetch_n(path: str, n: int, **kw: Any) -> Callable[[Row], Awaitable[None]]:
            async def go(row: Row) -> None:
                row.outcomes = await self.many([path] * n, **kw)
            return go

        rows.append(await self.run("origin resets mid-body (RST after 100 KB)", "failed",
                                   await fetch_n("/body/262144", 20), Mode("reset", 100_000)))
        rows.append(await self.run("origin stalls mid-body past idle (2 s)", "failed",
                                   await fetch_n("/body/262144", 10), Mode("stall", 100_000)))
        rows.append(await self.run("garbage chunked framing", "failed", await fetch_n("/garbage/1000", 10)))
        rows.append(await self.run("Content-Length longer than the body", "failed",
                                   await fetch_n("/cl-long/50000", 10)))

        async def cl_short(row: Row) -> None:  # then plain requests over the same pooled origin connections
            row.outcomes = await self.many(["/cl-short/50000"] * 10, concurrency=2)
            row.outcomes += await self.many(["/body/50000"] * 20, concurrency=2)

        rows.append(await self.run("Content-Length shorter than what is sent (+ reuse after)", "exact", cl_short))
        rows.append(await self.run("chunked body without the last chunk", "failed",
                                   await fetch_n("/nolast/50000", 10)))
        rows.append(await self.run("1 byte/s trickle (5 bytes)", "exact", await fetch_n("/trickle/5", 3, timeout=30)))
        rows.append(await self.run(f"big body ({self.big_mb} MiB, checked byte by byte)", "exact",
                                   await fetch_n(f"/big/{big}", 1, timeout=600)))
        rows.append(await self.slowloris())
        rows.append(await self.run("slow reader (16 KB / 100 ms for 8 s, 64 MiB body), 4 clients", "failed",
                                   await fetch_n("/big/67108864", 4, read_delay=0.1, read_size=16384,
                                                 stop_after=1_200_000, timeout=60),
                                   note="the clients leave after ~1.2 MB: RSS shows the backpressure bound"))
        rows.append(await self.idle_keepalives(1000))

        async def streams(row: Row) -> None:
            row.outcomes = await self.many(["/sse"] * 1000, concurrency=1000, timeout=60)

        rows.append(await self.run("1000 concurrent SSE streams", "exact-or-failed", streams,
                                   note="a 504 here is [timeouts] first_byte (3 s) expiring while the bench's "
                                        "one-process origin + fault proxy + 1000 clients share a core"))

        async def vanish(row: Row) -> None:
            row.outcomes = await self.many([f"/big/{32 << 20}"] * 50, concurrency=50, stop_after=65536)
            t0 = time.monotonic()
            while self.server.metric("sluicegate_inflight_requests") > 0 and time.monotonic() - t0 < 30:
                await asyncio.sleep(0.05)
            row.recovery_s = time.monotonic() - t0

        rows.append(await self.run("50 clients vanish mid-response (32 MiB)", "failed", vanish,
                                   note="recovery = until in-flight requests are back to 0"))
        rows.append(await self.worker_kill())
        rows += await self.websocket()
        rows += await self.http2()
        rows += await self.inference()
        return rows

    async def http2(self) -> list[Row]:
        """HTTP/2 (h2c prior knowledge: the same server/h2 protocol as over TLS) with streams multiplexed."""
        from sluicegate.bench.suites.faulth2 import h2_fetch_many, rapid_reset

        rows = []

        def h2(paths: list[str], conns: int = 1) -> Callable[[Row], Awaitable[None]]:
            async def go(row: Row) -> None:
                row.outcomes = await h2_fetch_many(self.server.port, self.server.host, paths, conns)
            return go

        mixed = ["/body/262144"] * 40 + ["/page/32768"] * 20 + ["/chunked/100000"] * 20 + ["/sse"] * 20
        rows.append(await self.run("h2: 100 streams on one connection (256 KB, page, chunked, SSE)", "exact",
                                   h2(mixed)))
        rows.append(await self.run("h2: 1000 concurrent SSE streams on 10 connections", "exact-or-failed",
                                   h2(["/sse"] * 1000, conns=10)))
        rows.append(await self.run("h2: origin resets mid-body (RST after 100 KB), 20 streams", "failed",
                                   h2(["/body/262144"] * 20), Mode("reset", 100_000)))
        rows.append(await self.run("h2: Content-Length longer than the body, 10 streams", "failed",
                                   h2(["/cl-long/50000"] * 10)))

        async def flood(row: Row) -> None:
            answer = await rapid_reset(self.server.port, self.server.host, 5000)
            row.extra_ok = answer["goaway"] == 11  # ENHANCE_YOUR_CALM
            row.note = f"GOAWAY code {answer['goaway']} (11 = ENHANCE_YOUR_CALM); then 50 streams on a new connection"
            row.outcomes = await h2_fetch_many(self.server.port, self.server.host, ["/body/65536"] * 50)

        rows.append(await self.run("h2: Rapid Reset (5000 HEADERS + RST_STREAM), then serving", "exact", flood))
        return rows

    async def ws_many(self, path: str, n: int, **kw: Any) -> list[Outcome]:
        from sluicegate.bench.suites.faultws import ws_fetch

        return list(await asyncio.gather(*(ws_fetch(self.server.port, path, self.server.host, **kw)
                                           for _ in range(n))))

    async def websocket(self) -> list[Row]:
        rows = []

        async def whole(row: Row) -> None:
            row.outcomes = await self.ws_many(f"/ws/{16 << 20}", 4)

        rows.append(await self.run("websocket: 16 MiB message in 1 MiB frames, 4 tunnels", "exact", whole))

        async def slow(row: Row) -> None:
            row.outcomes = await self.ws_many(f"/ws/{256 << 20}", 4, read_delay=0.1, read_size=16384,
                                              stop_after=1_200_000)

        rows.append(await self.run("websocket: slow readers of a 256 MiB message (16 KB / 100 ms)", "failed", slow,
                                   note="the clients leave after ~1.2 MB: RSS shows no message is buffered"))
        rows.append(await self.run("websocket: origin resets mid-message (RST after 3 MB)", "failed", whole,
                                   Mode("reset", 3_000_000)))
        return rows

    async def llm(self, model: str, n: int, concurrency: int = 16) -> list[Outcome]:
        sem = asyncio.Semaphore(concurrency)

        async def one() -> Outcome:
            async with sem:
                return await fetch(self.server.port, LLM_PATH, self.server.host, model=model, timeout=20)

        return list(await asyncio.gather(*(one() for _ in range(n))))

    async def inference(self) -> list[Row]:
        rows = []

        async def streams(row: Row) -> None:
            row.outcomes = await self.llm("sse", 20)

        rows.append(await self.run("inference: SSE chat streams (baseline)", "exact", streams))
        rows.append(await self.run("inference: provider resets mid-SSE (RST after 900 B)", "failed", streams,
                                   Mode("reset", 900)))

        async def storm(row: Row) -> None:
            row.outcomes = await self.llm("429", 200, concurrency=50)

        rows.append(await self.run("inference: 429 storm (200 requests, 50 at once)", "failed", storm,
                                   note="every client gets the provider's 429 (or the gateway's error), none hangs"))

        async def stall(row: Row) -> None:
            row.outcomes = await self.llm("stall-head", 10)

        rows.append(await self.run("inference: provider stalls before headers (first_byte 2 s)", "failed", stall))
        return rows

    async def slowloris(self) -> Row:
        async def go(row: Row) -> None:
            conns = []
            for _ in range(300):
                try:
                    r, w = await asyncio.open_connection("127.0.0.1", self.server.port)
                    w.write(b"GET /body/100 HTTP/1.1\r\nHost: ")
                    conns.append((r, w))
                except OSError:
                    break
            row.outcomes = await self.many(["/body/65536"] * 40)  # served meanwhile
            t0 = time.monotonic()
            while time.monotonic() - t0 < 3.0:  # past [timeouts] client_header = 2 s
                await asyncio.sleep(0.5)
                for _, w in conns:
                    with contextlib.suppress(OSError):
                        w.write(b"x")

            async def still_open(r: asyncio.StreamReader) -> bool:
                try:
                    return await asyncio.wait_for(r.read(1), 0.05) != b""
                except TimeoutError:
                    return True
                except OSError:
                    return False

            open_ = sum([await still_open(r) for r, _ in conns])
            row.note = (f"{len(conns)} slow-header connections, normal requests served meanwhile; {open_} still open "
                        "after 3 s ([timeouts] client_header = 2 s closes the rest)")
            for _, w in conns:
                w.close()
            row.extra_ok = open_ == 0

        return await self.run("slowloris: 300 connections sending headers 1 byte / 0.5 s", "exact", go)

    async def idle_keepalives(self, n: int) -> Row:
        async def go(row: Row) -> None:
            conns = []
            for _ in range(n):
                try:
                    r, w = await asyncio.open_connection("127.0.0.1", self.server.port)
                except OSError:
                    break
                conns.append((r, w))
            async def one(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
                w.write(f"GET /body/1024 HTTP/1.1\r\nHost: {self.server.host}\r\n\r\n".encode())
                head = await r.readuntil(b"\r\n\r\n")
                return head.startswith(b"HTTP/1.1 200") and len(await r.readexactly(1024)) == 1024
            sem = asyncio.Semaphore(64)

            async def guarded(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
                async with sem:
                    try:
                        return await asyncio.wait_for(one(r, w), 20)
                    except (OSError, asyncio.IncompleteReadError, TimeoutError):
                        return False

            served = sum(await asyncio.gather(*(guarded(r, w) for r, w in conns)))
            row.outcomes = await self.many(["/body/65536"] * 40)  # while all of them sit idle, kept alive
            row.note = f"{len(conns)} connections, {served} served once each then idle"
            for _, w in conns:
                w.close()

        return await self.run(f"{n} idle keep-alive connections + normal traffic", "exact", go)

    async def worker_kill(self) -> Row:
        async def go(row: Row) -> None:
            st = self.server.status() or {"workers": []}
            victim = next(w["pid"] for w in st["workers"] if w["ready"])
            stop = time.monotonic() + 4.0
            killed_at = time.monotonic()

            async def loop_() -> list[Outcome]:
                out = []
                while time.monotonic() < stop:
                    out.append(await fetch(self.server.port, "/body/65536", self.server.host, timeout=10))
                return out

            async def restarted() -> float:
                while time.monotonic() - killed_at < 30:
                    st = await asyncio.to_thread(self.server.status) or {"workers": []}
                    if sum(1 for w in st["workers"] if w["ready"] and w["pid"] != victim) == 2:
                        break
                    await asyncio.sleep(0.02)
                return time.monotonic() - killed_at

            tasks = [asyncio.create_task(loop_()) for _ in range(8)]
            await asyncio.sleep(1.0)
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            row.recovery_s = await restarted()
            for t in tasks:
                row.outcomes += await t
            row.note = "8 clients in a loop; recovery = until the supervisor has 2 ready workers again"

        return await self.run("a worker SIGKILLed under load (2 workers)", "exact-or-failed", go)


def markdown(result: dict[str, Any]) -> str:
    lines = [f"`python -m sluicegate.bench.suites.faults` — {result['when']}, sluicegate {result['workers']} workers, "
             f"load average {result['load'][0]:.1f} (shared machine: times are under contention)", "",
             "| scenario | requests | exact | visibly failed | **corrupted** | **lost** | max RSS MB | recovery s "
             "| ok |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['scenario']} | {r['requests']} | {r['exact']} | {r['failed']} | {r['corrupted']} | "
                     f"{r['lost']} | {r['max_rss_mb']:.0f} | {r['recovery_s']:.2f} | {'yes' if r['ok'] else 'NO'} |")
    notes = [f"* {r['scenario']}: {r['note']}" for r in result["rows"] if r["note"]]
    return "\n".join([*lines, "", *notes]) + "\n"


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="sg-faults-"))
    origin = FaultyOrigin()
    await origin.start()
    proxy = FaultProxy(origin.port)
    await proxy.start()
    server = Server(proxy.port, work)
    await asyncio.to_thread(server.start)
    try:
        suite = Suite(server, origin, proxy, args.big_mb)
        print(f"fault suite: sluicegate on :{server.port} (2 workers), origin :{origin.port}, fault proxy "
              f":{proxy.port}", flush=True)
        rows = [] if args.only_soak else await suite.all()
        result: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                  "load": os.getloadavg(), "workers": 2, "rows": [r.as_dict() for r in rows]}
        if args.soak:
            from sluicegate.bench.suites.soak import soak

            result["soak"] = await soak(server, args.soak, args.soak_fraction, args.soak_procs)
        return result
    finally:
        await asyncio.to_thread(server.stop)
        await proxy.close()
        await origin.close()


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--big-mb", type=int, default=512, help="size of the big-body scenario (MiB; 2048 = 2 GiB)")
    ap.add_argument("--soak", type=float, default=0.0, help="also run the soak for this many seconds (1800 = 30 min)")
    ap.add_argument("--soak-fraction", type=float, default=0.7, help="soak rate as a fraction of the measured max")
    ap.add_argument("--soak-procs", type=int, default=2,
                    help="checked-client processes for the soak (one Python client saturates before the proxy)")
    ap.add_argument("--only-soak", action="store_true", help="skip the fault scenarios, run only the soak")
    ap.add_argument("--json", default="bench/results/faults.json")
    ap.add_argument("--markdown", default="", help="also write the table here (docs/faults.md)")


def run_args(args: argparse.Namespace) -> int:
    result = asyncio.run(main_async(args))
    text = markdown(result)
    if "soak" in result:
        from sluicegate.bench.suites.soak import markdown as soak_md

        text += "\n" + soak_md(result["soak"])
    print(text)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(text)
    soak_ok = result.get("soak", {}).get("errors", 0) == 0
    return 0 if all(r["ok"] for r in result["rows"]) and soak_ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sluicegate bench faults", description=(__doc__ or "").split("\n")[0])
    add_arguments(ap)
    return run_args(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
