"""Team governance benchmark: what virtual keys + rpm + tpm + budget + ledger cost per stream, side by side.

One command: ``sluicegate bench teams`` (about 2 minutes) -> ``bench/results/teams.json``.

Three ``sluicegate serve`` instances (one worker each) run at once in front of one mock provider process:
governance off (no state: single-user mode), on (a key with rpm, tpm, concurrent-stream and budget
limits, prices, the SQLite ledger; admission leases on, the default) and on-exact (the same with
``lease_max_requests = 0``: one SQLite transaction per admission, as before leases). Rounds rotate
between them so machine noise hits all alike:
  * added TTFB: sequential streams, mock first byte without delay, p50/p99 of on (and on-exact) minus off;
  * streams/s: closed loop at fixed concurrency, and the server's CPU per stream (utime+stime of its
    process tree over the round);
  * in-process: CPU us (thread time) of authenticate, admit and settle against the SQLite store, each
    with leases on and off, one request at a time and 32 in flight;
  * correctness: ledger rows written == streams admitted; a burst of 200 on a 60 RPM key admits 60;
  * ``--litellm``: LiteLLM's proxy beside the governed instance; ``--litellm-burst``: the burst against
    sluicegate (2 workers; 2 instances + redis) and LiteLLM's router rpm (teams_burst.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from sluicegate.bench import lab
from sluicegate.dev.origin.serve import free_port
from sluicegate.dev.process import wait_port

ROOT = lab.repo_root() or Path.cwd()
PY = sys.executable
BODY = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "hi"}], "stream": True,
                   "max_tokens": 64, "stream_options": {"include_usage": True}}).encode()
PRICES = """
[inference.prices.bench]
input = 1.0
output = 2.0
"""


def gateway_config(port: int, admin: int, data: Path, mock: int, state: str = "", priced: bool = True) -> str:
    """The ``sluicegate serve`` config of the teams benches (this suite and teams_burst.py): model ``bench`` on
    the mock provider under ``/llm``, keys and ledger in ``data``; ``state`` adds lines to
    ``[inference.state]`` (a redis_url, lease settings). ``priced`` prices ``bench`` (1 and 2 per token) and
    forwards the mock's ``x-mock-fault`` header; the burst set-ups run without either."""
    return f"""
[server]
host = "127.0.0.1"
port = {port}
[admin]
listen = "127.0.0.1:{admin}"
[inference]
path_prefix = "/llm"
[inference.state]
data_dir = "{data}"
{state}{PRICES if priced else ""}
[[inference.providers]]
name = "mock"
kind = "openai-compatible"
base_url = "http://127.0.0.1:{mock}/v1"
auth = "none"
{'forward_headers = ["x-mock-fault"]' if priced else ""}
[[inference.models]]
name = "bench"
targets = [{{ provider = "mock", model = "mock-1" }}]
"""


def cpu_s(pid: int) -> float:
    return lab.tree_cpu_s(pid)


def peak_rss_kb(pid: int) -> int:
    return lab.tree_hwm_kib(pid)


def pct(values: list[float], q: float) -> float:
    return lab.pct(values, 100 * q)


class Instance:
    def __init__(self, name: str, tmp: Path, mock_port: int, governed: bool, state: str = "") -> None:
        if name == "exact":
            state += "\nlease_max_requests = 0"
        self.name = name
        self.port, self.admin = free_port(), free_port()
        self.data = tmp / name
        self.cfg = tmp / f"{name}.toml"
        self.cfg.write_text(gateway_config(self.port, self.admin, self.data, mock_port, state))
        self.headers = {"content-type": "application/json"}
        if governed:
            out = subprocess.run([PY, "-m", "sluicegate", "keys", "create", "--config", str(self.cfg), "--name",
                                  "bench", "--rpm", "1000000000", "--tpm", "1000000000", "--max-streams", "100000",
                                  "--budget", "1000000000", "--period", "month"], capture_output=True, text=True,
                                 check=True)
            self.headers["authorization"] = "Bearer " + out.stdout.strip().splitlines()[-1]
        self.burst_headers: dict[str, str] = {}
        if governed:  # a second key for the burst check: 60 requests per minute
            out = subprocess.run([PY, "-m", "sluicegate", "keys", "create", "--config", str(self.cfg), "--name",
                                  "burst", "--rpm", "60"], capture_output=True, text=True, check=True)
            self.burst_headers = {"content-type": "application/json",
                                  "authorization": "Bearer " + out.stdout.strip().splitlines()[-1]}
        self.proc = subprocess.Popen([PY, "-m", "sluicegate", "serve", "--config", str(self.cfg)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        self.url = f"http://127.0.0.1:{self.port}/llm/v1/chat/completions"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


class LiteLLM:
    """LiteLLM's proxy (optional venv bench/.litellm-venv) in front of the same mock, one worker.

    Without virtual keys: LiteLLM keeps keys in PostgreSQL through Prisma, whose query-engine binary
    ``prisma generate`` downloads from Prisma's own host (not reachable from this workplace). So this is
    a lower bound on what LiteLLM costs with keys + limits on."""

    EXE = ROOT / "bench" / ".litellm-venv" / "bin" / "litellm"

    def __init__(self, tmp: Path, mock_port: int) -> None:
        self.name = "litellm"
        self.port = free_port()
        cfg = tmp / "litellm.yaml"
        cfg.write_text("model_list:\n  - model_name: bench\n    litellm_params:\n      model: openai/mock-1\n"
                       f"      api_base: http://127.0.0.1:{mock_port}/v1\n      api_key: sk-bench-none\n"
                       "litellm_settings:\n  telemetry: false\n")
        env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY="False",
                   DISABLE_ADMIN_UI="True", NO_DOCS="True", LITELLM_LOG="ERROR",
                   LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY="true")  # loopback-only bench
        self.proc = subprocess.Popen([str(self.EXE), "--config", str(cfg), "--port", str(self.port),
                                      "--num_workers", "1"], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port, 120)
        self.url = f"http://127.0.0.1:{self.port}/v1/chat/completions"
        self.headers = {"content-type": "application/json"}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


async def stream(s: aiohttp.ClientSession, inst: Instance | LiteLLM, fault: str = "") -> float:
    h = dict(inst.headers)
    if fault:
        h["x-mock-fault"] = fault
    t0 = time.perf_counter()
    async with s.post(inst.url, data=BODY, headers=h) as r:
        if r.status != 200:
            raise RuntimeError(f"{inst.name}: status {r.status}: {(await r.read())[:200]!r}")
        await r.content.readany()
        ttfb = time.perf_counter() - t0
        while await r.content.readany():
            pass
    return ttfb


async def burst(s: aiohttp.ClientSession, inst: Instance, n: int) -> dict[str, Any]:
    """n requests at once on the 60 RPM key: how many were admitted (exact = 60)."""
    async def one() -> int:
        async with s.post(inst.url, data=BODY, headers=inst.burst_headers) as r:
            await r.read()
            return r.status

    statuses = await asyncio.gather(*[one() for _ in range(n)])
    other = {str(c): statuses.count(c) for c in sorted(set(statuses) - {200, 429})}
    return {"sent": n, "admitted": statuses.count(200), "refused_429": statuses.count(429), "limit": 60,
            "other_statuses": other}


async def ttfb_round(s: aiohttp.ClientSession, insts: list[Instance], n: int) -> dict[str, float]:
    """n sequential streams per instance, the order rotating every step; p50/p99 and minus ``off``."""
    out: dict[str, list[float]] = {i.name: [] for i in insts}
    cpu0 = {i.name: cpu_s(i.proc.pid) for i in insts}
    for k in range(n):
        for j in range(len(insts)):
            inst = insts[(k + j) % len(insts)]
            out[inst.name].append(1000 * await stream(s, inst, "first_delay_ms=0,between_ms=0"))
    res: dict[str, float] = {}
    for i in insts:  # server CPU per sequential stream: what the TTFB rounds cost each server (load-robust)
        res[f"{i.name}_cpu_ms_per_stream"] = 1000 * (cpu_s(i.proc.pid) - cpu0[i.name]) / n
    for name, v in out.items():
        res[f"{name}_p50_ms"] = statistics.median(v)
        res[f"{name}_p99_ms"] = pct(v, 0.99)
    for name in out:
        if name != "off":
            sfx = "" if name == "on" else f"_{name}"
            res[f"added_p50_ms{sfx}"] = res[f"{name}_p50_ms"] - res["off_p50_ms"]
            res[f"added_p99_ms{sfx}"] = res[f"{name}_p99_ms"] - res["off_p99_ms"]
            res[f"added_cpu_ms{sfx}"] = res[f"{name}_cpu_ms_per_stream"] - res["off_cpu_ms_per_stream"]
    return res


async def rate_round(s: aiohttp.ClientSession, inst: Instance | LiteLLM, concurrency: int,
                     seconds: float) -> dict[str, float]:
    done = 0
    stop = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await stream(s, inst)
            done += 1

    c0, t0 = cpu_s(inst.proc.pid), time.perf_counter()
    await asyncio.gather(*[loop() for _ in range(concurrency)])
    wall = time.perf_counter() - t0
    return {"streams_per_s": done / wall, "cpu_ms_per_stream": 1000 * (cpu_s(inst.proc.pid) - c0) / max(done, 1),
            "streams": done}


async def governor_cpu_us(n: int) -> dict[str, Any]:
    """Thread CPU of authenticate, admit and settle in-process (SQLite store, no sockets), leases on and off.

    ``seq``: one request at a time, a 0.5 ms await between admit and settle (a stream), so the
    settlement is pending when the next admission runs (as in the sequential TTFB rounds);
    ``c32``: 32 requests in flight."""
    out: dict[str, Any] = {}
    for lease in (32, 0):
        for mode, conc in (("seq", 1), ("c32", 32)):
            out[f"lease{lease}_{mode}"] = await _governor_run(n, lease, conc)
    return out


async def _governor_run(n: int, lease: int, conc: int) -> dict[str, float]:
    from sluicegate.config.model import Settings
    from sluicegate.inference.sse import Usage
    from sluicegate.teams.governor import Governor, Ticket
    from sluicegate.teams.keys import KeyRecord
    from sluicegate.teams.manage import KeyAdmin

    tmp = Path(tempfile.mkdtemp(prefix="sg-gov-"))
    try:
        s = Settings.model_validate({"inference": {
            "path_prefix": "/llm", "providers": [{"name": "m", "kind": "mock", "base_url": "http://127.0.0.1:9/v1"}],
            "models": [{"name": "bench", "targets": [{"provider": "m", "model": "m"}]}],
            "prices": {"bench": {"input": 1.0, "output": 2.0}},
            "state": {"data_dir": str(tmp), "lease_max_requests": lease}}})
        secret, _ = KeyAdmin(s.inference, {}).create("bench", rpm=10**9, tpm=10**9, max_streams=10**5, budget=1e9)
        gov = Governor(s.inference, {})
        headers = {b"authorization": b"Bearer " + secret.encode()}
        acc = {"authenticate": 0.0, "admit": 0.0, "settle": 0.0}

        async def one(tag: str) -> None:
            c0 = time.thread_time()
            key = await gov.authenticate(headers, "127.0.0.1")
            c1 = time.thread_time()
            assert isinstance(key, KeyRecord)
            t = await gov.admit(key, "bench", BODY, tag, False)
            c2 = time.thread_time()
            assert isinstance(t, Ticket)
            await asyncio.sleep(0.0005)  # the stream
            t.observe(Usage(input_tokens=10, output_tokens=27), "m", 200, "ok")
            c3 = time.thread_time()
            await gov.settle(t, 0.001)
            acc["authenticate"] += c1 - c0
            acc["admit"] += c2 - c1
            acc["settle"] += time.thread_time() - c3

        async def loop(label: str, j: int) -> None:
            for i in range(n // conc):
                await one(f"{label}{j}-{i}")

        await gov.startup()
        total = 0.0
        for label in ("warm", "measured"):
            for k in acc:
                acc[k] = 0.0
            t0 = time.process_time()
            await asyncio.gather(*[loop(label, j) for j in range(conc)])
            await asyncio.sleep(0.05)  # pending settlements flush
            total = time.process_time() - t0
        stats = getattr(gov.limits, "stats", {})
        await gov.shutdown()
        done = (n // conc) * conc
        return {**{f"{k}_us": round(1e6 * v / done, 2) for k, v in acc.items()},
                "process_cpu_us_per_request": round(1e6 * total / done, 2),
                "sqlite_transactions_per_request": round(stats.get("transactions", 0) / (2 * done), 4)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def litellm_side(s: aiohttp.ClientSession, tmp: Path, mock_port: int, on: Instance,
                       args: argparse.Namespace) -> dict[str, Any]:
    """LiteLLM (no keys) and sluicegate (keys + limits + ledger) side by side: TTFB, streams/s, CPU, RSS."""
    if not LiteLLM.EXE.exists():
        return {"skipped": "no bench/.litellm-venv (python3 -m venv bench/.litellm-venv && "
                           "bench/.litellm-venv/bin/pip install 'litellm[proxy]')"}
    lite = LiteLLM(tmp, mock_port)
    try:
        for _ in range(20):
            await stream(s, lite)
        t_lite: list[float] = []
        t_on: list[float] = []
        for i in range(args.ttfb_n // 2):
            pair: list[tuple[Instance | LiteLLM, list[float]]] = (
                [(lite, t_lite), (on, t_on)] if i % 2 else [(on, t_on), (lite, t_lite)])
            for inst, out in pair:
                out.append(1000 * await stream(s, inst, "first_delay_ms=0,between_ms=0"))
        rates: dict[str, list[dict[str, float]]] = {"litellm": [], "sluicegate_governed": []}
        for i in range(args.rounds):
            for name, inst in ((("litellm", lite), ("sluicegate_governed", on)) if i % 2 == 0
                               else (("sluicegate_governed", on), ("litellm", lite))):
                rates[name].append(await rate_round(s, inst, args.concurrency, args.seconds))
        med = {n: {k: statistics.median(r[k] for r in v) for k in ("streams_per_s", "cpu_ms_per_stream")}
               for n, v in rates.items()}
        return {"note": "LiteLLM without virtual keys (its key store needs Prisma's query-engine binary, "
                        "not reachable here): a lower bound on its cost with keys on",
                "ttfb_p50_ms": {"litellm": statistics.median(t_lite), "sluicegate_governed": statistics.median(t_on)},
                "ttfb_p99_ms": {"litellm": pct(t_lite, 0.99), "sluicegate_governed": pct(t_on, 0.99)},
                "closed_loop": med, "rounds": rates,
                "sluicegate_streams": len(t_on) + sum(int(r["streams"]) for r in rates["sluicegate_governed"]),
                "peak_rss_kb": {"litellm": peak_rss_kb(lite.proc.pid), "sluicegate_governed": peak_rss_kb(on.proc.pid)}}
    finally:
        lite.stop()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="sg-bench-teams-"))
    mock_port = free_port()
    mod = "sluicegate.dev.mock_provider"
    mock = subprocess.Popen([PY, "-m", mod, "--port", str(mock_port), "--uvloop", "--chunks", "27",
                             "--first-delay-ms", "10", "--between-ms", "1"], stdout=subprocess.DEVNULL)
    off: Instance | None = None
    on: Instance | None = None
    exact: Instance | None = None
    redis: subprocess.Popen[bytes] | None = None
    try:
        wait_port(mock_port)
        off = Instance("off", tmp, mock_port, governed=False)
        state = ""
        if args.state == "redis":
            redis_port = free_port()
            redis = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(redis_port),
                                      "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
            wait_port(redis_port)
            state = f'redis_url = "redis://127.0.0.1:{redis_port}/0"'
        on = Instance("on", tmp, mock_port, governed=True, state=state)
        insts = [off, on]
        if args.state == "sqlite" and not args.no_exact:
            exact = Instance("exact", tmp, mock_port, governed=True, state=state)
            insts.append(exact)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            for _ in range(50):
                for inst in insts:
                    await stream(s, inst)
            ttfb = [await ttfb_round(s, insts, args.ttfb_n) for _ in range(args.rounds)]
            burst_result = await burst(s, on, 200)
            rates: dict[str, list[dict[str, float]]] = {i.name: [] for i in insts}
            for i in range(args.rounds):
                for j in range(len(insts)):
                    inst = insts[(i + j) % len(insts)]
                    rates[inst.name].append(await rate_round(s, inst, args.concurrency, args.seconds))
            peer: dict[str, Any] = {}
            if args.litellm:
                peer = await litellm_side(s, tmp, mock_port, on, args)
        burst_peer: dict[str, Any] = {}
        if args.litellm_burst:  # fresh processes per set-up; the rounds above are over
            from sluicegate.bench.suites.teams_burst import run_all

            burst_peer = await run_all(tmp, mock_port, BODY, LiteLLM.EXE)
        await asyncio.sleep(1.0)  # the ledger writer flushes every 0.25 s
        admitted = 50 + args.ttfb_n * args.rounds + sum(r["streams"] for r in rates["on"]) + burst_result["admitted"] \
            + int(peer.get("sluicegate_streams", 0))
        rows = sqlite3.connect(on.data / "state.db").execute("SELECT count(*) FROM ledger").fetchone()[0]
        med = {k: statistics.median(r[k] for r in ttfb) for k in ttfb[0]}
        sps = {n: statistics.median(r["streams_per_s"] for r in v) for n, v in rates.items()}
        cpu = {n: statistics.median(r["cpu_ms_per_stream"] for r in v) for n, v in rates.items()}
        return {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "note": "shared machine (8 engineers, 2 cores): wall-clock figures taken under contention"},
            "params": vars(args),
            "ttfb": {**med, "rounds": ttfb},
            "streams_per_s": {**sps, "ratio_on_off": sps["on"] / sps["off"], "rounds": rates},
            "server_cpu_ms_per_stream": {**cpu, "added": cpu["on"] - cpu["off"],
                                         **({"added_exact": cpu["exact"] - cpu["off"]} if "exact" in cpu else {})},
            "peak_rss_kb": {i.name: peak_rss_kb(i.proc.pid) for i in insts},
            "governor_in_process": await governor_cpu_us(args.micro_n),
            "ledger": {"streams_admitted": admitted, "rows_written": rows, "exact": rows == admitted},
            "burst_60_rpm": burst_result,
            "litellm": peer,
            **({"burst_vs_litellm": burst_peer} if burst_peer else {}),
        }
    finally:
        for maybe in (off, on, exact):
            if maybe is not None:
                maybe.stop()
        for proc in (mock, redis):
            if proc is not None:
                proc.terminate()
                proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sluicegate bench teams", description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ttfb-n", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--micro-n", type=int, default=2048)
    ap.add_argument("--no-exact", action="store_true",
                    help="skip the third instance (governed, lease_max_requests = 0: a transaction per admission)")
    ap.add_argument("--state", choices=("sqlite", "redis"), default="sqlite",
                    help="where the governed instance keeps limit counters (redis: starts a redis-server)")
    ap.add_argument("--litellm", action="store_true",
                    help="also LiteLLM's proxy (bench/.litellm-venv) beside the governed instance")
    ap.add_argument("--litellm-burst", action="store_true",
                    help="also the limit under a burst (200 at once, 60 RPM): sluicegate 2 workers and 2 instances "
                         "+ redis vs LiteLLM's router rpm, 1 and 2 workers and 2 instances + redis")
    ap.add_argument("--out", default=None, help="default bench/results/teams[-redis].json")
    args = ap.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if args.out is None:
        args.out = str(lab.results_dir() / ("teams.json" if args.state == "sqlite" else "teams-redis.json"))
    res = asyncio.run(run(args))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    t, r, c, g = res["ttfb"], res["streams_per_s"], res["server_cpu_ms_per_stream"], res["governor_in_process"]
    print(f"added TTFB p50 {t['added_p50_ms']:.3f} ms (off {t['off_p50_ms']:.3f}, on {t['on_p50_ms']:.3f}); "
          f"p99 {t['added_p99_ms']:.3f} ms; server CPU per sequential stream +{t['added_cpu_ms']:.3f} ms")
    if "added_p50_ms_exact" in t:
        print(f"  without leases (one transaction per admission): added TTFB p50 {t['added_p50_ms_exact']:.3f} ms, "
              f"p99 {t['added_p99_ms_exact']:.3f} ms; server CPU per sequential stream "
              f"+{t['added_cpu_ms_exact']:.3f} ms")
    print(f"streams/s off {r['off']:.0f} on {r['on']:.0f} (ratio {r['ratio_on_off']:.3f}); server CPU/stream "
          f"off {c['off']:.3f} ms on {c['on']:.3f} ms (+{c['added']:.3f})")
    if "exact" in r:
        print(f"  without leases: streams/s {r['exact']:.0f}, server CPU/stream {c['exact']:.3f} ms "
              f"(+{c['added_exact']:.3f})")
    for name, v in g.items():
        print(f"governor in-process {name}: authenticate {v['authenticate_us']:.1f} + admit {v['admit_us']:.1f} + "
              f"settle {v['settle_us']:.1f} us thread CPU; process {v['process_cpu_us_per_request']:.1f} us/request; "
              f"{v['sqlite_transactions_per_request']:.3f} SQLite transactions per request")
    lt = res["litellm"]
    if lt.get("closed_loop"):
        cl = lt["closed_loop"]
        print(f"LiteLLM (no keys) vs sluicegate (keys+limits+ledger): TTFB p50 {lt['ttfb_p50_ms']['litellm']:.2f} vs "
              f"{lt['ttfb_p50_ms']['sluicegate_governed']:.2f} ms; streams/s {cl['litellm']['streams_per_s']:.0f} vs "
              f"{cl['sluicegate_governed']['streams_per_s']:.0f}; CPU/stream {cl['litellm']['cpu_ms_per_stream']:.2f}"
              f" vs {cl['sluicegate_governed']['cpu_ms_per_stream']:.2f} ms; peak RSS {lt['peak_rss_kb']['litellm']}"
              f" vs {lt['peak_rss_kb']['sluicegate_governed']} kB")
    elif lt:
        print(f"LiteLLM: {lt}")
    b = res["burst_60_rpm"]
    print(f"burst: {b['sent']} at once on a 60 RPM key -> {b['admitted']} admitted, {b['refused_429']} refused"
          + (f", other statuses {b['other_statuses']}" if b.get("other_statuses") else ""))
    if res.get("burst_vs_litellm"):
        from sluicegate.bench.suites.teams_burst import render

        print(render(res["burst_vs_litellm"]["rows"]))
    print(f"ledger rows {res['ledger']['rows_written']} for {res['ledger']['streams_admitted']} streams; "
          f"peak RSS off {res['peak_rss_kb']['off']} kB on {res['peak_rss_kb']['on']} kB -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
