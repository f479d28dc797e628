"""Protocol translation benchmark: CPU per translated event, added TTFB, streams/s per worker at c = 8/32/128
and RSS — translated streams side by side with plain relays in the same run (and LiteLLM when installed).

One command: ``sluicegate bench translate`` (about 2 minutes) -> ``bench/results/translate.json``
and ``bench/results/translate.png``.

1. In-process (pure CPU, ``time.process_time``): each sans-IO translator over a recorded-shape stream of
   ~33 events fed one event per read, versus the relay's tap (``SseTap.split``) over the same bytes; and the
   translation work on the way to the first byte (the request body, the first upstream read) and one text
   delta. With ``--before``, each tree's figures come from a fresh process running this file with that tree's
   ``src`` first on ``PYTHONPATH``.
2. End to end: the mock provider (its own process, uvloop; 27 deltas, 1 ms apart) and the gateway (one
   uvicorn worker) as separate processes; this process is the load generator (raw HTTP/1.1 client). Scenarios:
   chat relay, Messages relay, chat client -> Anthropic provider, Anthropic client -> chat provider, Responses
   client -> Anthropic provider. Added TTFB against the mock directly (same API); closed-loop streams/s at
   each concurrency; the gateway's CPU per stream and per upstream event from /proc (CPU time, robust on a
   shared machine); RSS after the run.
3. LiteLLM (``bench/.litellm-venv``, installed with ``pip install 'litellm[proxy]'``; never the project lock):
   its proxy in front of the same mock doing chat -> Anthropic, measured the same way when it starts.

``--before REV``: a second gateway running sluicegate's ``src`` as of git revision ``REV`` (the current tree
with the files changed since ``REV`` put back as they were), measured in the same run against the same mock:
each scenario's TTFB samples and closed-loop steps alternate between the two gateways, so a noisy machine
hits both alike. The table then shows added TTFB p50/p99, streams/s, CPU per stream and per event for both,
and the change (after / before).
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
from pathlib import Path
from typing import Any

from sluicegate.bench import lab
from sluicegate.bench.suites import gateway_child
from sluicegate.bench.suites.inference import RawClient

ROOT = lab.repo_root() or Path.cwd()  # the checkout: scripts/, tests/data/, git history


PY = sys.executable
DATA = ROOT / "tests" / "data" / "translate"
LITELLM = ROOT / "bench" / ".litellm-venv" / "bin" / "litellm"
MSG = [{"role": "user", "content": "hi"}]


def body(model: str, api: str) -> bytes:
    if api == "messages":
        return json.dumps({"model": model, "max_tokens": 256, "messages": MSG, "stream": True}).encode()
    if api == "responses":
        return json.dumps({"model": model, "input": "hi", "stream": True, "store": False}).encode()
    return json.dumps({"model": model, "messages": MSG, "stream": True,
                       "stream_options": {"include_usage": True}}).encode()


PATHS = {"chat": "/v1/chat/completions", "messages": "/v1/messages", "responses": "/v1/responses"}
# name -> (client api, gateway model, upstream api the mock answers, upstream events per stream)
SCENARIOS: dict[str, tuple[str, str, str, int]] = {
    "relay chat": ("chat", "relay", "chat", 31),
    "relay messages": ("messages", "relay", "messages", 33),
    "chat -> anthropic": ("chat", "x-an", "messages", 33),
    "anthropic -> chat": ("messages", "x-oc", "chat", 31),
    "responses -> anthropic": ("responses", "x-an", "messages", 33),
}


def gateway_settings(upstream: str) -> dict[str, Any]:
    """The gateway child's settings (``suites/gateway_child.py`` serves them)."""
    doc: dict[str, Any] = {"inference": {
            "path_prefix": "/llm",
            "providers": [{"name": "mock", "kind": "mock", "base_url": upstream},
                          {"name": "an", "kind": "anthropic", "base_url": upstream, "api_key": "sk-ant-bench-k1"},
                          {"name": "oc", "kind": "openai-compatible", "base_url": upstream, "auth": "none"}],
            "models": [{"name": "relay", "targets": [{"provider": "mock", "model": "mock-1"}]},
                       {"name": "x-an", "targets": [{"provider": "an", "model": "claude-mock"}]},
                       {"name": "x-oc", "targets": [{"provider": "oc", "model": "qwen-mock"}]}],
        }}
    return doc


# ---- 1. in-process CPU per event ----------------------------------------------------------------------

def _long_stream(name: str, deltas: int = 27) -> bytes:
    """A recorded-shape stream with ``deltas`` text deltas (the fixture's first delta repeated)."""
    data = (DATA / name).read_bytes()
    events = [e + b"\n\n" for e in data.split(b"\n\n") if e.strip()]
    delta = next(e for e in events if b"text_delta" in e or b'"content":"Hello"' in e)
    i = events.index(delta)
    return b"".join(events[:i] + [delta] * deltas + [e for e in events[i + 1:]
                                                      if b"text_delta" not in e and b'"content":"' not in e])


def _cpu_us(fn: Any, n: int) -> float:
    """CPU µs per call of ``fn`` (``time.process_time``), median of 5 batches of ``n``."""
    per: list[float] = []
    for _ in range(5):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        per.append((time.process_time() - t0) / n * 1e6)
    return statistics.median(per)


def cpu_micro(rounds: int) -> dict[str, Any]:
    """Pure CPU of each sans-IO translator (per upstream event, whole stream fed one event per read), and the
    translation work on the way to the first byte: the request (parse the client's JSON, translate, encode
    the provider's body, as ``attempts.prepare`` does), the first upstream read (a fresh translator fed what
    the mock sends at once: the events before the first text delta) and one steady-state text delta."""
    from sluicegate.inference.protocol import Api
    from sluicegate.inference.sse import SseTap
    from sluicegate.inference.translate import Ctx, route_for

    out: dict[str, Any] = {}
    cases = {"chat -> anthropic": (Api.CHAT, Api.MESSAGES, "anthropic_text.sse", "chat", "anthropic"),
             "anthropic -> chat": (Api.MESSAGES, Api.CHAT, "openai_text.sse", "messages", "openai-compatible"),
             "responses -> chat": (Api.RESPONSES, Api.CHAT, "openai_text.sse", "responses", "openai-compatible"),
             "responses -> anthropic": (Api.RESPONSES, Api.MESSAGES, "anthropic_text.sse", "responses", "anthropic")}
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode  # as attempts.prepare
    for name, (client, upstream, fixture, api, kind) in cases.items():
        data = _long_stream(fixture)
        pieces = [e + b"\n\n" for e in data.split(b"\n\n") if e.strip()]
        route = route_for(client, upstream)
        assert route is not None
        per_event: list[float] = []
        relay: list[float] = []
        for _ in range(5):
            t0 = time.process_time()
            for _ in range(rounds):
                tr = route.stream(Ctx("x", include_usage=True), 1 << 20)
                for p in pieces:
                    tr.feed(p)
                tr.finish()
            per_event.append((time.process_time() - t0) / (rounds * len(pieces)) * 1e6)
            t0 = time.process_time()
            for _ in range(rounds):
                tap = SseTap()
                for p in pieces:
                    tap.split(p)
            relay.append((time.process_time() - t0) / (rounds * len(pieces)) * 1e6)
        raw = body("m", api)

        def request(raw: bytes = raw, route: Any = route, kind: str = kind) -> bytes:
            req = route.request(dict(json.loads(raw)), Ctx(kind, 4096, frozenset()))
            req["model"] = "m"
            return encode(req).encode()  # type: ignore[no-any-return]

        is_delta = [b"text_delta" in p or b'"content":"Hello"' in p for p in pieces]
        first = b"".join(pieces[:is_delta.index(True)])  # the mock's first write: everything before a delta

        def first_read(route: Any = route, first: bytes = first) -> bytes:
            return route.stream(Ctx("x", include_usage=True), 1 << 20).feed(first)  # type: ignore[no-any-return]

        tr = route.stream(Ctx("x", include_usage=True), 1 << 20)
        tr.feed(b"".join(pieces[:is_delta.index(True) + 1]))
        delta = pieces[is_delta.index(True) + 1]
        out[name] = {"events": len(pieces), "translate_us_per_event": round(statistics.median(per_event), 2),
                     "relay_tap_us_per_event": round(statistics.median(relay), 2),
                     "request_us": round(_cpu_us(request, rounds * 10), 2),
                     "first_read_us": round(_cpu_us(first_read, rounds * 10), 2),
                     "text_delta_us": round(_cpu_us(lambda tr=tr, d=delta: tr.feed(d), rounds * 30), 2)}
    return out


# ---- 2. end to end ----------------------------------------------------------------------------------------

async def ttfb(client: RawClient, url: str, payload: bytes, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t, _, _ = await client.stream(url, payload)
        out.append(t * 1000)
    return out


async def closed_loop(client: RawClient, url: str, payload: bytes, conc: int, total: int) -> tuple[float, int]:
    left = total
    errors = 0

    async def worker() -> None:
        nonlocal left, errors
        while left > 0:
            left -= 1
            try:
                _, _, n = await client.stream(url, payload)
                errors += n == 0
            except Exception:
                errors += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    return total / (time.perf_counter() - t0), errors


def check_stream(url: str, payload: bytes) -> dict[str, Any]:
    """One stream read whole: did the translated answer carry the mock's text and end properly?"""
    import urllib.request

    req = urllib.request.Request(url, data=payload, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        raw = resp.read().decode()
    text = ""
    for line in raw.splitlines():
        if line.startswith("data: {"):
            obj = json.loads(line[6:])
            for ch in obj.get("choices") or ():
                text += (ch.get("delta") or {}).get("content") or ""
            d = obj.get("delta") or {}
            text += d.get("text", "") if isinstance(d, dict) else obj.get("delta", "") if obj.get(
                "type") == "response.output_text.delta" else ""
    return {"text_ok": text.startswith("Hello from the sluicegate mock"), "ends_cleanly":
            raw.rstrip().endswith(("[DONE]", '"type":"message_stop"}', "response.completed")) or
            '"type":"response.completed"' in raw[-4000:]}


async def measure(gateways: dict[str, tuple[str, int]], direct: str,
                  scenarios: dict[str, tuple[str, str, str, int]], args: argparse.Namespace,
                  gw_prefix: str = "/llm") -> dict[str, dict[str, Any]]:
    """Every scenario through every gateway (``label -> (base URL, pid)``), interleaved so that the load of a
    shared machine drifting over the run hits every figure alike: TTFB requests rotate over the mock directly
    and each gateway; the closed-loop steps run round by round over every scenario and gateway (order
    alternating), so a translated stream's µs/event over the relay compares steps taken minutes apart never."""
    results: dict[str, dict[str, Any]] = {label: {} for label in gateways}
    labels = list(gateways)
    client = RawClient()
    urls = {(label, name): base + gw_prefix + PATHS[api]
            for label, (base, _) in gateways.items() for name, (api, _m, _u, _e) in scenarios.items()}
    try:
        for name, (api, model, up_api, events) in scenarios.items():
            payload = body(model, api)
            dpayload = body("mock-1", up_api)
            durl = direct + PATHS[up_api]
            checks = {}
            for label in labels:
                for _ in range(30):
                    await client.stream(urls[label, name], payload)
                checks[label] = await asyncio.to_thread(check_stream, urls[label, name], payload)
            via: dict[str, list[float]] = {label: [] for label in labels}
            paired: dict[str, list[float]] = {label: [] for label in labels}
            dire: list[float] = []
            seq = ["", *labels]  # "" = the mock directly
            for i in range(args.rounds * args.ttfb_n):  # one request each, rotating, so drift hits all alike
                k = i % len(seq)
                got: dict[str, float] = {}
                for label in seq[k:] + seq[:k]:
                    t, _, _ = await client.stream(urls[label, name] if label else durl,
                                                  payload if label else dpayload)
                    got[label] = t * 1000
                dire.append(got[""])
                for label in labels:
                    via[label].append(got[label])
                    paired[label].append(got[label] - got[""])
            dmed, d99 = statistics.median(dire), lab.pct(dire, 99)
            for label in labels:
                v = via[label]
                results[label][name] = {
                    "events_per_stream": events, "upstream_api": up_api,
                    "ttfb_via_p50_ms": statistics.median(v), "ttfb_via_p99_ms": lab.pct(v, 99),
                    "ttfb_direct_p50_ms": dmed, "ttfb_direct_p99_ms": d99,
                    "added_ttfb_p50_ms": statistics.median(v) - dmed, "added_ttfb_p99_ms": lab.pct(v, 99) - d99,
                    "added_ttfb_paired_p50_ms": statistics.median(paired[label]),
                    "added_ttfb_paired_p99_ms": lab.pct(paired[label], 99),
                    "ttfb_via_p95_ms": lab.pct(v, 95), "by_concurrency": {}, "check": checks[label]}
                print(f"{label:7s} {name:24s} added TTFB p50 {statistics.median(v) - dmed:.3f} ms "
                      f"p99 {lab.pct(v, 99) - d99:.3f} ms", flush=True)
        cells = [(label, name) for name in scenarios for label in labels]
        for conc in args.concurrency:
            per_round = max(conc, args.streams // args.rounds)
            acc: dict[tuple[str, str], dict[str, Any]] = {
                cell: {"rates": [], "cpu": 0.0, "n": 0, "errors": 0} for cell in cells}
            for r in range(args.rounds):
                for label, name in (cells if r % 2 == 0 else cells[::-1]):
                    pid = gateways[label][1]
                    api, model, _, _ = scenarios[name]
                    c0 = lab.tree_cpu_s(pid)
                    rate, errors = await closed_loop(client, urls[label, name], body(model, api), conc, per_round)
                    a = acc[label, name]
                    a["cpu"] += lab.tree_cpu_s(pid) - c0
                    a["n"] += per_round
                    a["errors"] += errors
                    a["rates"].append(rate)
            for (label, name), a in acc.items():
                events = scenarios[name][3]
                results[label][name]["by_concurrency"][str(conc)] = {
                    "streams_per_s": round(statistics.median(a["rates"]), 1), "errors": a["errors"],
                    "gateway_cpu_ms_per_stream": round(a["cpu"] / a["n"] * 1000, 3),
                    "gateway_cpu_us_per_event": round(a["cpu"] / a["n"] / events * 1e6, 2)}
                x = results[label][name]["by_concurrency"][str(conc)]
                print(f"{label:7s} {name:24s} c={conc}: {x['streams_per_s']:.0f}/s "
                      f"{x['gateway_cpu_ms_per_stream']:.2f} ms/stream {x['gateway_cpu_us_per_event']:.1f} µs/ev",
                      flush=True)
        for label in labels:
            for row in results[label].values():
                row["rss_kib"] = lab.rss_kib(gateways[label][1])
    finally:
        client.close()
    for rows in results.values():  # CPU per event a translated stream costs over the relay of the same upstream
        for row in rows.values():
            relay = rows.get("relay " + row["upstream_api"])
            if relay is not None and relay is not row:
                row["over_relay_us_per_event"] = {
                    c: round(x["gateway_cpu_us_per_event"] - relay["by_concurrency"][c]["gateway_cpu_us_per_event"], 2)
                    for c, x in row["by_concurrency"].items()}
    return results


def comparison(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the before/after table: one per scenario and figure, with after / before."""
    rows: list[dict[str, Any]] = []
    before, after = result["before"]["sluicegate"], result["sluicegate"]
    for name, a in after.items():
        b = before.get(name)
        if b is None:
            continue
        figs = [("added TTFB p50 ms", "added_ttfb_p50_ms"), ("added TTFB p99 ms", "added_ttfb_p99_ms")]
        for label, key in figs:
            rows.append({"scenario": name, "figure": label, "before": b[key], "after": a[key]})
        for c in a["by_concurrency"]:
            for label, key in (("streams/s", "streams_per_s"), ("CPU ms/stream", "gateway_cpu_ms_per_stream"),
                               ("CPU µs/event", "gateway_cpu_us_per_event")):
                rows.append({"scenario": name, "figure": f"{label} c={c}", "before": b["by_concurrency"][c][key],
                             "after": a["by_concurrency"][c][key]})
            if "over_relay_us_per_event" in a and "over_relay_us_per_event" in b:
                rows.append({"scenario": name, "figure": f"µs/event over relay c={c}",
                             "before": b["over_relay_us_per_event"][c], "after": a["over_relay_us_per_event"][c]})
    for case, a_m in result.get("cpu_micro", {}).items():
        b_m = result["before"].get("cpu_micro", {}).get(case)
        if b_m is not None:
            for label, key in (("in-process translate µs/event", "translate_us_per_event"),
                               ("in-process text delta µs", "text_delta_us"),
                               ("in-process request µs", "request_us"),
                               ("in-process first read µs", "first_read_us")):
                if key in a_m and key in b_m:
                    rows.append({"scenario": case, "figure": label, "before": b_m[key], "after": a_m[key]})
    for r in rows:
        r["after_over_before"] = round(r["after"] / r["before"], 3) if r["before"] else None
    return rows


def litellm_version() -> str:
    res = subprocess.run([str(LITELLM.parent / "pip"), "show", "litellm"], capture_output=True, text=True,
                         check=False)
    return next((line.split(": ", 1)[1] for line in res.stdout.splitlines() if line.startswith("Version:")), "?")


def start_litellm(port: int, mock_port: int, workdir: Path) -> subprocess.Popen[bytes] | str:
    """LiteLLM's proxy doing chat -> Anthropic in front of the same mock; a reason string when it cannot."""
    if not LITELLM.exists():
        return ("not installed: python3 -m venv bench/.litellm-venv && "
                "bench/.litellm-venv/bin/pip install 'litellm[proxy]'")
    cfg = workdir / "litellm.yaml"
    cfg.write_text(
        "model_list:\n"
        "  - model_name: x-an\n"
        "    litellm_params:\n"
        "      model: anthropic/claude-mock\n"
        f"      api_base: http://127.0.0.1:{mock_port}\n"
        "      api_key: sk-ant-bench-k1\n"
        "litellm_settings:\n  telemetry: false\n")
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY="False",
               DISABLE_ADMIN_UI="True", NO_DOCS="True",
               # loopback-only bench: no master key (the proxy refuses to start without one otherwise)
               LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY="true", LITELLM_LOG="ERROR")
    log = open(workdir / "litellm.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([str(LITELLM), "--config", str(cfg), "--port", str(port), "--num_workers", "1"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        lab.wait_port(port, 90)
    except RuntimeError:
        proc.kill()
        return "did not start within 90 s: " + (workdir / "litellm.log").read_text()[-600:]
    return proc


async def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                       "note": "shared machine: wall-clock figures taken under contention; "
                                               "prefer the CPU-time figures"}}
    mock_port, gw_port, ll_port, before_port = lab.free_port(), lab.free_port(), lab.free_port(), lab.free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    mock = subprocess.Popen([PY, "-m", mock_module(), "--port", str(mock_port), "--uvloop",
                             "--chunks", "27", "--first-delay-ms", "0", "--between-ms", str(args.between_ms)],
                            env=env, stdout=subprocess.DEVNULL)
    upstream = f"http://127.0.0.1:{mock_port}/v1"
    gw = subprocess.Popen([PY, "-P", gateway_child.PATH, "--port", str(gw_port), "--settings",
                           json.dumps(gateway_settings(upstream))], env=env)
    procs: list[subprocess.Popen[bytes]] = [mock, gw]
    gateways = {"after": (f"http://127.0.0.1:{gw_port}", gw.pid)}
    tmp = tempfile.TemporaryDirectory(prefix="sg-bench-translate-")
    try:
        if args.before:
            rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", args.before], capture_output=True,
                                 text=True, check=True).stdout.strip()
            old_src = lab.source_at(rev, Path(tmp.name))
            benv = dict(os.environ, PYTHONPATH=str(old_src), BENCH_SRC=str(old_src))
            bgw = subprocess.Popen([PY, "-P", gateway_child.PATH, "--port", str(before_port), "--settings",
                                    json.dumps(gateway_settings(upstream))],
                                   env=benv)
            procs.append(bgw)
            gateways["before"] = (f"http://127.0.0.1:{before_port}", bgw.pid)
            out["before"] = {"rev": rev}
            lab.wait_port(before_port)
        micro = micro_ab(args.micro_rounds, old_src if args.before else None)
        out["cpu_micro"] = micro["after"]
        if args.before:
            out["before"]["cpu_micro"] = micro["before"]
        lab.wait_port(mock_port)
        lab.wait_port(gw_port)
        direct = f"http://127.0.0.1:{mock_port}"
        measured = await measure(gateways, direct, SCENARIOS, args)
        out["sluicegate"] = measured["after"]
        if args.before:
            out["before"]["sluicegate"] = measured["before"]
            out["comparison"] = comparison(out)
        if args.litellm:
            workdir = lab.results_dir()
            workdir.mkdir(parents=True, exist_ok=True)
            ll = start_litellm(ll_port, mock_port, workdir)
            if isinstance(ll, str):
                out["litellm"] = {"skipped": ll}
                print("litellm:", ll, flush=True)
            else:
                procs.append(ll)
                ll_args = argparse.Namespace(**{**vars(args), "streams": args.litellm_streams})
                out["litellm"] = (await measure({"litellm": (f"http://127.0.0.1:{ll_port}", ll.pid)}, direct,
                                                {"chat -> anthropic": SCENARIOS["chat -> anthropic"]}, ll_args,
                                                ""))["litellm"]
                out["litellm"]["version"] = litellm_version()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        tmp.cleanup()
    return out


def micro_ab(rounds: int, old_src: Path | None) -> dict[str, dict[str, Any]]:
    """The in-process figures, each in a fresh child process per tree (``--micro-json``), alternating
    after / before three times; per case the median of each figure."""
    trees: dict[str, Path | None] = {"after": None}
    if old_src is not None:
        trees["before"] = old_src
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in trees}
    for i in range(3):
        for label in (list(trees) if i % 2 == 0 else list(trees)[::-1]):
            src = trees[label]
            # This file run by path (-P: its folder not on sys.path), sluicegate imported from the tree measured.
            env = dict(os.environ, PYTHONPATH=str(src or ROOT / "src"))
            done = subprocess.run([PY, "-P", str(Path(__file__).resolve()), "--micro-json", str(rounds)], env=env,
                                  capture_output=True, text=True, check=True)
            runs[label].append(json.loads(done.stdout.strip().splitlines()[-1]))
    out: dict[str, dict[str, Any]] = {}
    print("in-process translator CPU (µs per event, median of 3 fresh processes per tree):", flush=True)
    for label, results in runs.items():
        out[label] = {case: {key: (statistics.median(r[case][key] for r in results) if key != "events"
                                   else results[0][case][key]) for key in results[0][case]}
                      for case in results[0]}
        for k, v in out[label].items():
            print(f"  {label:7s} {k:24s} translate {v['translate_us_per_event']:.2f}  "
                  f"relay tap {v['relay_tap_us_per_event']:.2f}  text delta {v['text_delta_us']:.2f}  "
                  f"request {v['request_us']:.1f}  first read {v['first_read_us']:.1f}", flush=True)
    return out


def mock_module() -> str:
    """The mock provider's module in this tree (it moved from inference/ to dev/)."""
    moved = ROOT / "src" / "sluicegate" / "dev" / "mock_provider.py"
    return "sluicegate.dev.mock_provider" if moved.exists() else "sluicegate.inference.mock"


def print_comparison(rows: list[dict[str, Any]], rev: str) -> None:
    print(f"\nbefore = {rev[:12]}, after = this tree (same run, same mock, alternating)")
    print(f"{'scenario':24s} {'figure':26s} {'before':>10s} {'after':>10s} {'after/before':>12s}")
    for r in rows:
        ratio = f"{r['after_over_before']:.3f}" if r["after_over_before"] is not None else "-"
        print(f"{r['scenario']:24s} {r['figure']:26s} {r['before']:10.3f} {r['after']:10.3f} {ratio:>12s}")


def plot(result: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot", flush=True)
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    rows = {f"sluicegate {k}": v for k, v in result["sluicegate"].items()}
    if "before" in result:
        rows.update({f"before {k}": v for k, v in result["before"]["sluicegate"].items()})
    if isinstance(result.get("litellm"), dict) and "skipped" not in result["litellm"]:
        rows.update({f"litellm {k}": v for k, v in result["litellm"].items() if isinstance(v, dict)})
    for name, row in rows.items():
        cs = sorted(int(c) for c in row["by_concurrency"])
        a.plot(cs, [row["by_concurrency"][str(c)]["streams_per_s"] for c in cs], marker="o", label=name)
        b.plot(cs, [row["by_concurrency"][str(c)]["gateway_cpu_us_per_event"] for c in cs], marker="o", label=name)
    a.set(xscale="log", xlabel="concurrency", ylabel="streams/s (one worker)", title="throughput")
    b.set(xscale="log", yscale="log", xlabel="concurrency", ylabel="proxy CPU µs per upstream event",
          title="CPU per event")
    a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="sluicegate bench translate", description=__doc__.split("\n")[0])
    ap.add_argument("--serve-gateway", type=int)
    ap.add_argument("--micro-json", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--upstream", default="")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ttfb-n", type=int, default=40)
    ap.add_argument("--streams", type=int, default=600, help="streams per concurrency step")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[8, 32, 128])
    ap.add_argument("--between-ms", type=float, default=1.0)
    ap.add_argument("--micro-rounds", type=int, default=300)
    ap.add_argument("--litellm-streams", type=int, default=160, help="streams per step for LiteLLM (slower)")
    ap.add_argument("--no-litellm", dest="litellm", action="store_false")
    ap.add_argument("--before", metavar="REV", help="also run a gateway with src as of git revision REV, "
                    "side by side in the same run (e.g. --before main)")
    ap.add_argument("--out", default=str(lab.results_dir() / "translate.json"))
    ap.add_argument("--profile", metavar="SCENARIO", help="instead: py-spy on the gateway under one scenario's "
                    "closed loop, CPU shares per part of the path (e.g. --profile 'anthropic -> chat')")
    ap.add_argument("--profile-c", type=int, default=32, help="concurrent streams while profiling")
    ap.add_argument("--profile-s", type=float, default=15.0, help="seconds profiled")
    args = ap.parse_args(argv)
    if args.profile:
        from sluicegate.bench.suites import translate_profile

        raise SystemExit(translate_profile.run(args))
    if args.serve_gateway:
        gateway_child.main(["--port", str(args.serve_gateway), "--settings",
                           json.dumps(gateway_settings(args.upstream))])
        return
    if args.micro_json:
        print(json.dumps(cpu_micro(args.micro_json)))
        return
    import uvloop

    result = uvloop.run(run(args))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    plot(result, out.with_suffix(".png"))
    if "comparison" in result:
        print_comparison(result["comparison"], result["before"]["rev"])
    print(f"wrote {out}", flush=True)


if __name__ == "__main__":
    main()
