"""The limit under a burst, side by side: 200 requests at once against a 60 RPM limit, sluicegate vs LiteLLM.

Run by ``sluicegate bench teams --litellm-burst`` (its own row block in ``bench/results/teams.json``
under ``burst_vs_litellm``). Every set-up gets fresh processes and a fresh limit, then one burst of
``SENT`` concurrent streaming chat requests (the teams bench's body), spread round-robin over its
entry points; the answer is the count of 200s and 429s:

  * ``sluicegate workers=2``: ``serve --workers 2``, a virtual key with ``--rpm 60`` (embedded SQLite);
  * ``sluicegate 2 instances + redis``: two ``serve`` processes, the key's counters in one redis-server
    (keys and ledger in one shared data_dir: this bench starts no PostgreSQL);
  * ``litellm workers=N``: LiteLLM's proxy, the model's deployment carrying ``rpm: 60`` in its
    ``model_list``, enforced by the router's ``optional_pre_call_checks: [enforce_model_rate_limits]``
    (increment first, refuse over the limit, per calendar minute), ``--num_workers N``, counters in
    process memory;
  * ``litellm 2 instances + redis``: two LiteLLM proxies whose ``router_settings`` share the same redis.

LiteLLM's per-key limits (virtual keys) are not measured: they live in its PostgreSQL through Prisma,
whose query-engine binary ``prisma generate`` fetches from binaries.prisma.sh, unreachable here (PyPI's
``prisma`` wheel and npm's ``@prisma/engines`` ship no engine, only a downloader). LiteLLM counts per
calendar minute; a burst is started at least 30 s before a minute ends, and the row says if it straddled one.

Owns: the set-ups above, the counting, the table. Knows nothing of the teams suite's other rounds.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from sluicegate.bench import lab
from sluicegate.bench.report import table
from sluicegate.bench.suites.teams import gateway_config
from sluicegate.dev.origin.serve import free_port
from sluicegate.dev.process import wait_port

LIMIT = 60
SENT = 200
PY = sys.executable

def tally(statuses: Sequence[int], limit: int = LIMIT) -> dict[str, Any]:
    """The burst's outcome: admitted (200), refused (429), anything else by code, and the error vs the limit.

    ``over_admitted`` is how many 200s exceed the limit (0 when exact); ``exact`` needs every request
    answered 200 or 429 and exactly ``limit`` admitted (with fewer requests than the limit: all admitted)."""
    admitted = sum(1 for s in statuses if s == 200)
    refused = sum(1 for s in statuses if s == 429)
    other: dict[str, int] = {}
    for s in statuses:
        if s not in (200, 429):
            other[str(s)] = other.get(str(s), 0) + 1
    expect = min(limit, len(statuses))
    return {"sent": len(statuses), "limit": limit, "admitted": admitted, "refused_429": refused,
            "other_statuses": dict(sorted(other.items())), "over_admitted": max(0, admitted - limit),
            "exact": admitted == expect and not other}


def render(rows: Sequence[dict[str, Any]]) -> str:
    """The side-by-side table printed by the suite (rows as :func:`tally` returns them, plus ``setup``)."""
    body = []
    for r in rows:
        if "skipped" in r:
            body.append([r["setup"], "-", "-", "-", "-", "-", "-", "skipped: " + str(r["skipped"])])
            continue
        other = ", ".join(f"{k}x{v}" for k, v in r["other_statuses"].items()) or "-"
        verdict = "exact" if r["exact"] else (f"over-admits {r['over_admitted']}" if r["over_admitted"]
                                              else "not exact")
        if r.get("straddled_minute"):
            verdict += " (straddled a minute)"
        per = "+".join(str(n) for n in r.get("admitted_per_entry_point", [])) or "-"
        body.append([r["setup"], str(r["sent"]), str(r["admitted"]), str(r["refused_429"]), other, per,
                     str(r.get("busy_processes", "-")), verdict])
    return table(["set-up (limit 60 RPM)", "sent", "200", "429", "other", "200 per entry", "busy procs", "verdict"],
                 body)


def litellm_yaml(mock_port: int, redis_port: int | None = None) -> str:
    """LiteLLM config: one deployment limited to LIMIT rpm by the router, no retries, no fallbacks."""
    text = ("model_list:\n  - model_name: bench\n    litellm_params:\n      model: openai/mock-1\n"
            f"      api_base: http://127.0.0.1:{mock_port}/v1\n      api_key: sk-bench-none\n"
            f"      rpm: {LIMIT}\n"
            "  - model_name: warm\n    litellm_params:\n      model: openai/mock-1\n"
            f"      api_base: http://127.0.0.1:{mock_port}/v1\n      api_key: sk-bench-none\n"
            "router_settings:\n  optional_pre_call_checks: [enforce_model_rate_limits]\n  num_retries: 0\n")
    if redis_port is not None:
        text += f"  redis_host: 127.0.0.1\n  redis_port: {redis_port}\n"
    return text + "litellm_settings:\n  telemetry: false\n  num_retries: 0\n"


class Procs:
    """The processes of one set-up: started, their URLs, stopped (each by its own pid)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []
        self.headers = {"content-type": "application/json"}
        self.warm_headers = self.headers
        self.warm_model = "bench"

    def start(self, argv: list[str], port: int, url: str, log: Path, env: dict[str, str] | None = None,
              timeout: float = 60) -> None:
        with log.open("wb") as err:
            self.procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err))
        try:
            wait_port(port, timeout)
        except RuntimeError as e:
            tail = log.read_bytes()[-800:].decode(errors="replace")
            raise RuntimeError(f"{argv[0]} {' '.join(argv[1:4])}: {e}; its stderr ends: {tail}") from None
        self.urls.append(url)

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def sluicegate_setup(tmp: Path, mock_port: int, workers: int, instances: int, redis_port: int | None) -> Procs:
    d = tmp / f"sg-w{workers}-i{instances}"
    state = f'redis_url = "redis://127.0.0.1:{redis_port}/0"' if redis_port else ""
    out = Procs()
    cfgs = []
    for i in range(instances):  # one data_dir (keys + ledger) for both; the counters in redis when set
        port = free_port()
        cfg = d / f"node{i}.toml"
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_text(gateway_config(port, free_port(), d / "data", mock_port, state, priced=False))
        cfgs.append((cfg, port))
    key = subprocess.run([PY, "-m", "sluicegate", "keys", "create", "--config", str(cfgs[0][0]), "--name", "burst",
                          "--rpm", str(LIMIT)], capture_output=True, text=True, check=True).stdout.split()[-1]
    out.headers = {**out.headers, "authorization": "Bearer " + key}
    warm = subprocess.run([PY, "-m", "sluicegate", "keys", "create", "--config", str(cfgs[0][0]), "--name", "warm"],
                          capture_output=True, text=True, check=True).stdout.split()[-1]
    out.warm_headers = {**out.headers, "authorization": "Bearer " + warm}  # no limits: warms every path
    for cfg, port in cfgs:
        out.start([PY, "-m", "sluicegate", "serve", "--config", str(cfg), "--workers", str(workers)], port,
                  f"http://127.0.0.1:{port}/llm/v1/chat/completions", cfg.with_suffix(".log"))
    return out


def litellm_setup(exe: Path, tmp: Path, mock_port: int, workers: int, instances: int,
                  redis_port: int | None) -> Procs:
    d = tmp / f"litellm-w{workers}-i{instances}"
    d.mkdir(parents=True, exist_ok=True)
    cfg = d / "litellm.yaml"
    cfg.write_text(litellm_yaml(mock_port, redis_port))
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY="False", DISABLE_ADMIN_UI="True",
               NO_DOCS="True", LITELLM_LOG="ERROR",
               LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY="true")  # loopback-only bench
    out = Procs()
    out.warm_model = "warm"  # a second deployment without rpm: warms the proxy, spends nothing of bench's limit
    for i in range(instances):
        port = free_port()
        out.start([str(exe), "--config", str(cfg), "--port", str(port), "--num_workers", str(workers)], port,
                  f"http://127.0.0.1:{port}/v1/chat/completions", d / f"node{i}.log", env=env, timeout=180)
    return out


async def fire(urls: list[str], headers: dict[str, str], body: bytes, n: int = SENT) -> list[int]:
    """n requests at once, round-robin over the entry points; each answer read to its end; its status."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=300)) as s:
        async def one(i: int) -> int:
            try:
                async with s.post(urls[i % len(urls)], data=body, headers=headers) as r:
                    await r.read()
                    return r.status
            except aiohttp.ClientError:
                return 0  # connection refused/reset: counted under "other" as 0

        return list(await asyncio.gather(*[one(i) for i in range(n)]))


async def clear_of_minute_edge(margin_s: float = 30.0) -> None:
    """Wait for the next calendar minute when fewer than margin_s seconds are left in this one."""
    left = 60.0 - time.time() % 60.0
    if left < margin_s:
        await asyncio.sleep(left + 0.5)


def busy_processes(before: dict[int, int], after: dict[int, int], min_ticks: int = 2) -> int:
    """How many processes of a set-up used at least min_ticks of CPU (1/100 s) during the burst."""
    return sum(1 for pid, t in after.items() if t - before.get(pid, 0) >= min_ticks)


def tree_ticks(procs: Procs) -> dict[int, int]:
    return {p: lab.cpu_ticks(p) for top in procs.procs for p in lab.tree(top.pid)}


async def warm_up(procs: Procs, body: bytes, per_entry: int = 4) -> list[int]:
    """A few requests through every entry point (and worker) outside the limit, so no cold path decides
    which entry point admits the burst."""
    warm = body.replace(b'"model": "bench"', b'"model": "' + procs.warm_model.encode() + b'"')
    return await fire(procs.urls, procs.warm_headers, warm, per_entry * len(procs.urls))


async def measure(procs: Procs, body: bytes, setup: str) -> dict[str, Any]:
    warm = await warm_up(procs, body)
    await clear_of_minute_edge()
    ticks0 = tree_ticks(procs)
    t0 = time.time()
    statuses = await fire(procs.urls, procs.headers, body)
    t1 = time.time()
    busy = busy_processes(ticks0, tree_ticks(procs))
    k = len(procs.urls)
    per_entry = [sum(1 for i, st in enumerate(statuses) if i % k == j and st == 200) for j in range(k)]
    return {"setup": setup, **tally(statuses), "admitted_per_entry_point": per_entry, "busy_processes": busy,
            "warm_up_statuses": sorted(set(warm)),
            "seconds": round(t1 - t0, 2),
            "straddled_minute": int(t0 // 60) != int(t1 // 60)}


async def run_all(tmp: Path, mock_port: int, body: bytes, litellm_exe: Path) -> dict[str, Any]:
    redis_bin = shutil.which("redis-server")
    rows: list[dict[str, Any]] = []
    redis: subprocess.Popen[bytes] | None = None
    try:
        redis_port = free_port()
        if redis_bin:
            redis = subprocess.Popen([redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_port(redis_port)
        plan: list[tuple[str, str, int, int, bool]] = [
            ("sluicegate workers=2", "sg", 2, 1, False),
            ("sluicegate 2 instances + redis", "sg", 1, 2, True),
            ("litellm workers=1", "lite", 1, 1, False),
            ("litellm workers=2", "lite", 2, 1, False),
            ("litellm 2 instances + redis", "lite", 1, 2, True),
        ]
        for setup, kind, workers, instances, shared in plan:
            if shared and redis is None:
                rows.append({"setup": setup, "skipped": "no redis-server"})
                continue
            if kind == "lite" and not litellm_exe.exists():
                rows.append({"setup": setup, "skipped": f"no {litellm_exe}"})
                continue
            if shared:  # every set-up starts from an empty redis
                subprocess.run(["redis-cli", "-p", str(redis_port), "FLUSHALL"], capture_output=True, check=False)
            rp = redis_port if shared else None
            try:
                procs = (sluicegate_setup(tmp, mock_port, workers, instances, rp) if kind == "sg"
                         else litellm_setup(litellm_exe, tmp, mock_port, workers, instances, rp))
            except (RuntimeError, subprocess.CalledProcessError) as e:  # one set-up failing spoils no other
                rows.append({"setup": setup, "skipped": f"did not start: {e}"})
                continue
            try:
                rows.append(await measure(procs, body, setup))
            finally:
                procs.stop()
    finally:
        if redis is not None:
            redis.terminate()
            redis.wait(10)
    return {"limit_rpm": LIMIT, "sent": SENT, "rows": rows,
            "note": "LiteLLM's limit here is the router's per-deployment rpm (model_list), not a virtual key's: "
                    "its key store needs Prisma's query-engine binary from binaries.prisma.sh (unreachable; "
                    "PyPI's prisma and npm's @prisma/engines ship only a downloader)"}
