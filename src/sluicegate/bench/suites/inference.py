"""Inference gateway benchmark: added TTFB, sustainable streams/s (litellm-bench protocol), memory per stream.

One command: ``sluicegate bench inference`` (about 2 minutes) -> ``bench/results/inference.json``.

Processes: the mock provider (uvloop) and the gateway (uvicorn + uvloop + httptools, one worker) run as
separate processes; this process is the load generator (aiohttp, uvloop). All three share the machine's
cores, so the absolute rates are a floor for what a dedicated core would do. Medians of repeated rounds
are reported. Must not import gateway internals beyond what is needed to start it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any, cast

import aiohttp

from sluicegate.bench import lab
from sluicegate.bench.suites import gateway_child

ROOT = lab.repo_root() or Path.cwd()  # the checkout: scripts/, tests/data/, git history

PY = sys.executable
CHAT_BODY = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "hi"}], "stream": True,
                        "stream_options": {"include_usage": True}}).encode()
DIRECT_BODY = CHAT_BODY.replace(b'"bench"', b'"mock-1"')
# 27 content deltas + role + finish + usage + [DONE] = 31 events; 10 ms before the first, 1 ms apart; the
# content is the mock's text (multibyte characters included) with one delta of 8 KiB: ~8.4 KB in all.
LITELLM_PROTOCOL = {"chunks": 27, "first_delay_ms": 10.0, "between_ms": 1.0, "big_event": 8192}


def gateway_settings(upstream: str) -> dict[str, Any]:
    """The gateway child's settings (``suites/gateway_child.py`` serves them)."""
    doc: dict[str, Any] = {"inference": {
            "path_prefix": "/llm",
            "providers": [{"name": "mock", "kind": "mock", "base_url": upstream}],
            "models": [{"name": "bench", "targets": [{"provider": "mock", "model": "mock-1"}]}],
        }}
    return doc


def served_config(upstream: str, this_tree: bool, core: str) -> str:
    """The TOML both builds' ``sluicegate serve`` read under ``--vs-exe``: the same ``[inference]``; access log off
    in both (the older build had none by default); this tree's admin listener off (other runs may hold 9901)
    and its serving core as asked."""
    server = ["[server]", "access_log = false"]
    if this_tree:
        server += [f'http_core = "{core}"', "[admin]", 'listen = ""']
    return "\n".join([*server, "[inference]", 'path_prefix = "/llm"',
                      f'providers = [{{ name = "mock", kind = "mock", base_url = "{upstream}" }}]',
                      'models = [{ name = "bench", targets = [{ provider = "mock", model = "mock-1" }] }]', ""])


class _RawStream(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection of the raw load generator: counts bytes, notes the first body byte,
    ends at the chunked terminator. No parsing beyond that: the generator must cost less than what it measures."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: list[_RawStream]) -> None:
        self.loop = loop
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[tuple[float, int]] | None = None
        self.t0 = 0.0
        self.ttfb = -1.0
        self.n = 0
        self.in_head = True
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    def start(self, request: bytes, t0: float) -> asyncio.Future[tuple[float, int]]:
        assert self.transport is not None
        self.t0, self.ttfb, self.n, self.in_head, self.tail = t0, -1.0, 0, True, b""
        self.done = self.loop.create_future()
        self.transport.write(request)
        return self.done

    def data_received(self, data: bytes) -> None:
        if self.in_head:
            self.tail += data
            i = self.tail.find(b"\r\n\r\n")
            if i < 0:
                return
            if self.tail[9:12] != b"200" and self.done is not None and not self.done.done():
                self.done.set_exception(RuntimeError(self.tail[:12].decode("latin-1")))
                assert self.transport is not None
                self.transport.close()
                return
            data, self.in_head, self.tail = self.tail[i + 4:], False, b""
        if not data:
            return
        if self.ttfb < 0:
            self.ttfb = time.perf_counter() - self.t0
        self.n += len(data)
        tail = self.tail + data if len(data) < 7 else data
        self.tail = tail[-7:]
        if (tail.endswith(b"\r\n0\r\n\r\n") or tail == b"0\r\n\r\n") and self.done is not None:
            self.done.set_result((self.ttfb, self.n))
            self.pool.append(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.pool:
            self.pool.remove(self)
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("closed mid-response"))


class RawClient:
    """A minimal streaming HTTP/1.1 client with a keep-alive pool (chunked responses only, as both servers
    send for SSE). About a third of aiohttp's CPU per stream, so the load generator hides less of the rate."""

    def __init__(self) -> None:
        self.pools: dict[tuple[str, int], list[_RawStream]] = {}
        self.requests: dict[tuple[str, bytes, str], bytes] = {}

    async def stream(self, url: str, body: bytes, fault: str = "") -> tuple[float, float, int]:
        t0 = time.perf_counter()
        u = urllib.parse.urlsplit(url)
        host, port = u.hostname or "127.0.0.1", u.port or 80
        key = (url, body, fault)
        req = self.requests.get(key)
        if req is None:
            extra = f"x-mock-fault: {fault}\r\n" if fault else ""
            req = self.requests[key] = (
                f"POST {u.path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\n{extra}\r\n").encode() + body
        pool = self.pools.setdefault((host, port), [])
        proto = None
        while pool:
            cand = pool.pop()
            if cand.transport is not None and not cand.transport.is_closing():
                proto = cand
                break
        if proto is None:
            loop = asyncio.get_running_loop()
            _, proto = await loop.create_connection(lambda: _RawStream(loop, pool), host, port)
        ttfb, n = await proto.start(req, t0)
        return ttfb, time.perf_counter() - t0, n

    def close(self) -> None:
        for pool in self.pools.values():
            for proto in list(pool):
                if proto.transport is not None:
                    proto.transport.close()


Client = aiohttp.ClientSession | RawClient


async def one_stream(session: Client, url: str, body: bytes, fault: str = "") -> tuple[float, float, int]:
    if isinstance(session, RawClient):
        return await session.stream(url, body, fault)
    t0 = time.perf_counter()
    headers = {"content-type": "application/json"}
    if fault:
        headers["x-mock-fault"] = fault
    async with session.post(url, data=body, headers=headers) as resp:
        first = await resp.content.readany()
        ttfb = time.perf_counter() - t0
        n = len(first)
        while True:
            chunk = await resp.content.readany()
            if not chunk:
                break
            n += len(chunk)
    return ttfb, time.perf_counter() - t0, n


async def ttfb_round(session: Client, direct: str, via: str, n: int) -> dict[str, Any]:
    """Sequential pairs, alternating order; mock first byte without delay."""
    d: list[float] = []
    g: list[float] = []
    fault = "first_delay_ms=0,between_ms=0"
    for i in range(n):
        pair = [(direct, DIRECT_BODY, d), (via, CHAT_BODY, g)]
        if i % 2:
            pair.reverse()
        for url, body, out in pair:
            ttfb, _, _ = await one_stream(session, url, body, fault)
            out.append(ttfb * 1000)
    diffs = [b - a for a, b in zip(d, g, strict=True)]
    return {"direct_p50_ms": statistics.median(d), "via_p50_ms": statistics.median(g),
            "direct_p95_ms": lab.pct(d, 95), "via_p95_ms": lab.pct(g, 95),
            "added_p50_ms": statistics.median(g) - statistics.median(d),
            "added_paired_median_ms": statistics.median(diffs)}


async def rate_round(session: Client, url: str, body: bytes, rate: float,
                     seconds: float) -> dict[str, Any]:
    """Open-loop Poisson-free constant arrivals at ``rate``/s for ``seconds``; every stream read to the end."""
    total = int(rate * seconds)
    results: list[tuple[float, float, int]] = []
    errors = 0

    async def fire() -> None:
        nonlocal errors
        try:
            results.append(await one_stream(session, url, body))
        except Exception:
            errors += 1

    tasks = []
    t0 = time.perf_counter()
    for i in range(total):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(fire()))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    ttfb = [r[0] * 1000 for r in results]
    dur = [r[1] * 1000 for r in results]
    p95_ttfb, p95_dur = lab.pct(ttfb, 95), lab.pct(dur, 95)
    return {"offered_per_s": rate, "completed": len(results), "errors": errors,
            "completed_per_s": len(results) / elapsed, "p50_ttfb_ms": lab.pct(ttfb, 50), "p95_ttfb_ms": p95_ttfb,
            "p50_duration_ms": lab.pct(dur, 50), "p95_duration_ms": p95_dur,
            "meets_slo": errors == 0 and p95_ttfb <= 100 and p95_dur <= 200}


async def memory_round(session: aiohttp.ClientSession, url: str, gw_pid: int, n: int) -> dict[str, Any]:
    """n concurrent slow streams (one event every 500 ms); RSS of the gateway before and with all in flight."""
    base = lab.tree_rss_kib(gw_pid)[0]
    started = 0
    done_evt = asyncio.Event()
    release = asyncio.Event()

    async def slow() -> None:
        nonlocal started
        headers = {"content-type": "application/json", "x-mock-fault": "first_delay_ms=0,between_ms=500,chunks=40"}
        async with session.post(url, data=CHAT_BODY, headers=headers) as resp:
            await resp.content.readany()
            started += 1
            if started == n:
                done_evt.set()
            await release.wait()

    tasks = [asyncio.ensure_future(slow()) for _ in range(n)]
    await asyncio.wait_for(done_evt.wait(), 60)
    await asyncio.sleep(1.0)
    peak = lab.tree_rss_kib(gw_pid)[0]
    release.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"concurrent_streams": n, "gateway_rss_before_mb": base / 1024, "gateway_rss_in_flight_mb": peak / 1024,
            "kib_per_stream": (peak - base) / n}


def _median_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0] if k not in ("meets_slo", "cpu_busy")}
    med["cpu_busy"] = {k: statistics.median(r["cpu_busy"][k] for r in rounds) for k in rounds[0]["cpu_busy"]}
    med["meets_slo"] = sum(r["meets_slo"] for r in rounds) > len(rounds) / 2
    return med


async def run(args: argparse.Namespace) -> dict[str, Any]:
    mock_port = lab.free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    cpus = sorted(os.sched_getaffinity(0))
    pinned = args.pin and len(cpus) >= 2
    if pinned:  # the gateway's worker gets a core of its own; mock and load generator share the other(s)
        os.sched_setaffinity(0, set(cpus[1:]))
    mock_mod = ("sluicegate.dev.mock_provider" if (ROOT / "src/sluicegate/dev/mock_provider.py").exists()
                else "sluicegate.inference.mock")
    mock = subprocess.Popen([PY, "-m", mock_mod, "--port", str(mock_port), "--uvloop",
                             "--chunks", str(LITELLM_PROTOCOL["chunks"]),
                             "--first-delay-ms", str(LITELLM_PROTOCOL["first_delay_ms"]),
                             "--between-ms", str(LITELLM_PROTOCOL["between_ms"]),
                             "--fault", f"big_event={LITELLM_PROTOCOL['big_event']}" if args.big_event else ""],
                            env=env, stdout=subprocess.DEVNULL)
    tmp = tempfile.TemporaryDirectory(prefix="sg-bench-inference-")
    trees: dict[str, dict[str, str]] = {"after": dict(env, BENCH_HTTP_CORE=args.core)}
    python = {"after": PY}
    rev = ""
    if args.vs_exe:  # another build's gateway (its own venv, compiled as it ships), run by its own interpreter
        python["before"] = str(Path(args.vs_exe).parent / "python")
        trees["before"] = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BENCH_HTTP_CORE")}
        rev = args.vs_label or args.vs_exe
    elif args.cores:  # this tree's gateway under two serving cores, side by side ("before" = the first)
        first, second = args.cores.split(",")
        rev = f"core={first}"
        trees = {"before": dict(env, BENCH_HTTP_CORE=first), "after": dict(env, BENCH_HTTP_CORE=second)}
    elif args.before:  # the older tree's gateway, measured alongside (same mock, rounds alternating)
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", args.before], capture_output=True, text=True,
                             check=True).stdout.strip()
        trees["before"] = dict(os.environ, PYTHONPATH=str(lab.source_at(rev, Path(tmp.name))))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports: dict[str, int] = {}
    for label, tree_env in trees.items():
        ports[label] = lab.free_port()
        gw_env = dict(tree_env, BENCH_PIN_CPU=str(cpus[0])) if pinned else tree_env
        if args.vs_exe:  # both as they ship: `sluicegate serve`, one worker, each build's own defaults
            conf = Path(tmp.name) / f"{label}.toml"
            conf.write_text(served_config(f"http://127.0.0.1:{mock_port}/v1", label == "after", args.core))
            exe = [args.vs_exe] if label == "before" else [PY, "-m", "sluicegate"]
            procs[label] = subprocess.Popen([*exe, "serve", "--config", str(conf), "--port", str(ports[label]),
                                             "--workers", "1"], env=gw_env, stderr=subprocess.DEVNULL)
            continue
        settings = json.dumps(gateway_settings(f"http://127.0.0.1:{mock_port}/v1"))
        procs[label] = subprocess.Popen([python.get(label, PY), "-P", gateway_child.PATH, "--port", str(ports[label]),
                                         "--settings", settings], env=gw_env)
    labels = list(trees)
    try:
        lab.wait_port(mock_port)
        for port in ports.values():
            lab.wait_port(port)
        direct = f"http://127.0.0.1:{mock_port}/v1/chat/completions"
        via = {label: f"http://127.0.0.1:{port}/llm/v1/chat/completions" for label, port in ports.items()}
        conn = aiohttp.TCPConnector(limit=0)
        raw = RawClient()
        results: dict[str, dict[str, Any]] = {}
        async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=120)) as session:
            client: Client = raw if args.client == "raw" else session
            for _ in range(50):  # warm-up (pools, code paths)
                for url in via.values():
                    await one_stream(client, url, CHAT_BODY)
                await one_stream(client, direct, DIRECT_BODY)
            ttfb_rounds: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
            for i in range(args.rounds):
                for label in (labels if i % 2 == 0 else labels[::-1]):
                    ttfb_rounds[label].append(await ttfb_round(client, direct, via[label], args.ttfb_n))
            # Memory first, on fresh workers: after a ladder that backed up (--all-rates on a busy machine) the heap
            # has already grown past what 1,000 slow streams need, and the round would show nothing.
            memory = {label: await memory_round(session, via[label], procs[label].pid, args.memory_streams)
                      for label in labels}
            rungs: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
            best = {label: 0.0 for label in labels}
            live = set(labels)  # gateways still meeting the SLO at the last rate (or all, --all-rates)
            failed: set[str] = set()
            for rate in args.rates:
                rounds: dict[str, list[dict[str, Any]]] = {label: [] for label in live}
                for i in range(args.rounds):
                    for label in (labels if i % 2 == 0 else labels[::-1]):
                        if label not in live:
                            continue
                        pid = procs[label].pid
                        c0, m0, l0 = lab.tree_cpu_s(pid), lab.tree_cpu_s(mock.pid), time.process_time()
                        w0 = time.perf_counter()
                        r = await rate_round(client, via[label], CHAT_BODY, rate, args.seconds)
                        wall = time.perf_counter() - w0
                        n = max(1, r["completed"])
                        gw, mk, lg = lab.tree_cpu_s(pid) - c0, lab.tree_cpu_s(mock.pid) - m0, time.process_time() - l0
                        r["gateway_cpu_ms_per_stream"] = 1000 * gw / n
                        r["mock_cpu_ms_per_stream"] = 1000 * mk / n
                        r["loadgen_cpu_ms_per_stream"] = 1000 * lg / n
                        # Busy fraction of one core over the round: a process near 1.0 is the one saturating.
                        r["cpu_busy"] = {"gateway": gw / wall, "mock": mk / wall, "loadgen": lg / wall}
                        rounds[label].append(r)
                for label, rs in rounds.items():
                    med = _median_rounds(rs)
                    rungs[label].append({"via_gateway": med, "rounds": rs})
                    print(f"  {label:6s} {rate:>5}/s via gateway: completed {med['completed_per_s']:.0f}/s p95 ttfb "
                          f"{med['p95_ttfb_ms']:.1f} ms p95 dur {med['p95_duration_ms']:.1f} ms "
                          f"slo={med['meets_slo']} cpu ms/stream gw {med['gateway_cpu_ms_per_stream']:.2f} mock "
                          f"{med['mock_cpu_ms_per_stream']:.2f} loadgen {med['loadgen_cpu_ms_per_stream']:.2f}; "
                          f"cores busy gw {med['cpu_busy']['gateway']:.2f} mock {med['cpu_busy']['mock']:.2f} "
                          f"loadgen {med['cpu_busy']['loadgen']:.2f}", flush=True)
                    if med["meets_slo"] and label not in failed:
                        best[label] = max(best[label], rate)  # every step up to here met the SLO
                    elif not med["meets_slo"]:
                        failed.add(label)
                        if not args.all_rates:  # else: go on for the CPU per stream at every rate
                            live.discard(label)
                if not live:
                    break
            top = max(best.values()) or args.rates[0]
            direct_check = await rate_round(client, direct, DIRECT_BODY, top, args.seconds)
            for label in labels:
                ttfb = {k: statistics.median(r[k] for r in ttfb_rounds[label]) for k in ttfb_rounds[label][0]}
                ladder = rungs[label]
                cpu_per_stream = [st["via_gateway"]["gateway_cpu_ms_per_stream"] for st in ladder]
                results[label] = {
                    "ttfb": {"requests_per_round": args.ttfb_n, "rounds": args.rounds, **ttfb,
                             "goal_added_p50_ms": 1.0},
                    "streams": {"sustainable_streams_per_s": best[label], "goal": 300, "ladder": ladder,
                                "gateway_cpu_ms_per_stream": statistics.median(cpu_per_stream),
                                # CPU per stream falls as the rate rises (more events per loop wake-up):
                                # compare runs at the same rate, e.g. 200/s.
                                "gateway_cpu_ms_per_stream_by_rate": {
                                    str(int(st["via_gateway"]["offered_per_s"])):
                                        st["via_gateway"]["gateway_cpu_ms_per_stream"] for st in ladder},
                                "cpu_bound_streams_per_s_per_core": 1000 / statistics.median(cpu_per_stream),
                                "mock_cpu_ms_per_stream": statistics.median(
                                    st["via_gateway"]["mock_cpu_ms_per_stream"] for st in ladder),
                                "loadgen_cpu_ms_per_stream": statistics.median(
                                    st["via_gateway"]["loadgen_cpu_ms_per_stream"] for st in ladder),
                                "direct_to_mock_at_best_rate": direct_check, "seconds_per_round": args.seconds},
                    "memory": memory[label],
                }
            raw.close()
        out: dict[str, Any] = {
            "benchmark": "inference",
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "pinned": pinned, "load_average_at_start": os.getloadavg(),
                        "load_generator": args.client,
                        "note": "gateway (1 worker) pinned to one core when pinned; mock + load generator on the "
                                "other; the machine is shared with other work, so figures are medians"},
            "protocol": {"events_per_stream": 31, **LITELLM_PROTOCOL,
                         "slo": "p95 ttfb <= 100 ms, p95 duration <= 200 ms"},
            **results["after"],
        }
        out["after_core"] = args.core
        if args.before or args.cores or args.vs_exe:
            out["before"] = {"rev": rev, **results["before"]}
        if args.vs_exe:
            out["before"]["exe"] = args.vs_exe
        if "before" in out:
            out["cpu_per_stream_after_over_before_at_equal_rates"] = equal_rate_ratio(out)
            out["cpu_per_stream_after_over_before_where_both_kept_up"] = equal_rate_ratio(out, kept_up=True)
        if args.cores:
            out["after_core"] = args.cores.split(",")[1]
        return out
    finally:
        for proc in (*procs.values(), mock):  # gateways first, so they never see their upstream vanish
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        tmp.cleanup()


def equal_rate_ratio(result: dict[str, Any], kept_up: bool = False) -> float | None:
    """Median over the offered rates both gateways ran of (after CPU per stream / before CPU per stream);
    ``kept_up``: only rates where both completed >= 95 % of the offered streams (a gateway that backs up
    batches more events per wake-up, which lowers its CPU per stream: not an equal footing)."""
    a = result["streams"]["gateway_cpu_ms_per_stream_by_rate"]
    b = result["before"]["streams"]["gateway_cpu_ms_per_stream_by_rate"]
    done = {label: {str(int(st["via_gateway"]["offered_per_s"])): st["via_gateway"]["completed_per_s"]
                    / st["via_gateway"]["offered_per_s"] for st in side["streams"]["ladder"]}
            for label, side in (("a", result), ("b", result["before"]))}
    ratios = [a[r] / b[r] for r in a if b.get(r)
              and (not kept_up or min(done["a"].get(r, 0), done["b"].get(r, 0)) >= 0.95)]
    return statistics.median(ratios) if ratios else None


def print_before_after(result: dict[str, Any]) -> None:
    b, a = result["before"], result
    rows = [("added TTFB p50 ms", b["ttfb"]["added_p50_ms"], a["ttfb"]["added_p50_ms"]),
            ("added TTFB p95 (via p95 - direct p95) ms", b["ttfb"]["via_p95_ms"] - b["ttfb"]["direct_p95_ms"],
             a["ttfb"]["via_p95_ms"] - a["ttfb"]["direct_p95_ms"]),
            ("sustainable streams/s (SLO)", b["streams"]["sustainable_streams_per_s"],
             a["streams"]["sustainable_streams_per_s"]),
            ("gateway CPU ms/stream (median over rates)", b["streams"]["gateway_cpu_ms_per_stream"],
             a["streams"]["gateway_cpu_ms_per_stream"]),
            ("CPU-bound streams/s per core", b["streams"]["cpu_bound_streams_per_s_per_core"],
             a["streams"]["cpu_bound_streams_per_s_per_core"]),
            ("KiB per in-flight stream", b["memory"]["kib_per_stream"], a["memory"]["kib_per_stream"])]
    for rate, cpu in a["streams"]["gateway_cpu_ms_per_stream_by_rate"].items():
        old = b["streams"]["gateway_cpu_ms_per_stream_by_rate"].get(rate)
        if old is not None:
            rows.append((f"gateway CPU ms/stream at {rate}/s", old, cpu))
            rows.append((f"  CPU-bound streams/s per core at {rate}/s", 1000 / old, 1000 / cpu))
    eq = equal_rate_ratio(result)
    if eq is not None:
        rows.append(("CPU/stream after/before, median at equal rates", 1.0, eq))
    eq = equal_rate_ratio(result, kept_up=True)
    if eq is not None:
        rows.append(("  ... where both completed >= 95 % offered", 1.0, eq))
    after = f"core={result['after_core']}" if result.get("after_core") else "this tree"
    print(f"\nbefore = {b['rev'][:12]}, after = {after} (same run, same mock, rounds alternating)")
    print(f"{'figure':44s} {'before':>10s} {'after':>10s} {'after/before':>12s}")
    for name, old, new in rows:
        ratio = f"{new / old:.3f}" if old else "-"
        print(f"{name:44s} {old:10.3f} {new:10.3f} {ratio:>12s}")


def parser() -> argparse.ArgumentParser:
    """The suite's options (``bench goals`` parses its inference row's settings with it too)."""
    ap = argparse.ArgumentParser(prog="sluicegate bench inference", description=__doc__.split("\n")[0])
    ap.add_argument("--serve-gateway", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--upstream", help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ttfb-n", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rates", type=float, nargs="+", default=[100, 200, 300, 400, 500, 600, 800])
    ap.add_argument("--memory-streams", type=int, default=1000)
    ap.add_argument("--client", choices=("raw", "aiohttp"), default="raw",
                    help="load generator's HTTP client for the TTFB and rate rounds (memory round: aiohttp)")
    ap.add_argument("--before", metavar="REV", help="also run a gateway with src as of git revision REV, "
                    "side by side in the same run (rounds alternate between the two)")
    ap.add_argument("--cores", metavar="A,B", help="this tree's gateway under two serving cores side by side "
                    "(uvicorn,native): reported as before (A) / after (B)")
    ap.add_argument("--vs-exe", metavar="PATH", help="also run the gateway of another build, side by side: PATH is "
                    "that build's venv bin/sluicegate (its bin/python serves it, with that build's own compiled "
                    "modules); reported as before")
    ap.add_argument("--vs-label", default="", help="the name of the --vs-exe build in the report (e.g. its commit)")
    ap.add_argument("--core", choices=("native", "uvicorn"), default="native",
                    help="this tree's serving core (default native, as [server] http_core ships)")
    ap.add_argument("--no-big-event", dest="big_event", action="store_false",
                    help="no 8 KiB delta in the mock's streams (the runs before 2026-12-07)")
    ap.add_argument("--all-rates", action="store_true", help="run every rate for both gateways even after the "
                    "SLO failed (CPU per stream at equal rates on a busy machine); sustainable = the highest rate "
                    "with every step up to it meeting the SLO")
    ap.add_argument("--pin", action="store_true", help="gateway on core 0, mock + load generator on the rest")
    ap.add_argument("--out", default=str(lab.results_dir() / "inference.json"))
    ap.add_argument("--plot", action="store_true", help="also write a PNG beside the JSON (rates, SLO, CPU)")
    return ap


def measure(argv: list[str]) -> dict[str, Any]:
    """One run with the suite's options ``argv`` (parsed by :func:`parser`): the result document, not written."""
    import uvloop

    return uvloop.run(run(parser().parse_args(argv)))


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.serve_gateway:
        gateway_child.main(["--port", str(args.serve_gateway), "--settings",
                           json.dumps(gateway_settings(args.upstream))])
        return
    import uvloop

    result = uvloop.run(run(args))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    t, s, mem = result["ttfb"], result["streams"], result["memory"]
    print(f"added TTFB p50 {t['added_p50_ms']:.3f} ms (direct {t['direct_p50_ms']:.3f}, via {t['via_p50_ms']:.3f}); "
          f"sustainable {s['sustainable_streams_per_s']:.0f} streams/s (CPU-bound "
          f"{s['cpu_bound_streams_per_s_per_core']:.0f}/s per core); "
          f"{mem['kib_per_stream']:.1f} KiB per in-flight stream at {mem['concurrent_streams']}")
    if "before" in result:
        print_before_after(result)
    if args.plot:
        from sluicegate.bench.suites.inference_plot import plot

        plot(result, Path(args.out).with_suffix(".png"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
