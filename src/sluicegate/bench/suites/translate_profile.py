"""``sluicegate bench translate --profile SCENARIO``: where the gateway's CPU goes under one scenario's load.

Starts the mock provider and the gateway (one uvicorn worker) as ``bench translate`` does, warms up, then
attaches ``py-spy record --format raw`` to the gateway while this process drives a closed loop of the
scenario's streams at ``--profile-c`` concurrent streams for ``--profile-s`` seconds. Prints the gateway's CPU
per upstream event (from ``/proc``) and the share of samples per part of the path — uvicorn's ``send``, the
translator (``inference/translate/``), the origin client (``upstream/``), intake and attempts, and the event
loop's own time (samples whose innermost Python frame is the loop's ``run``: uvloop's C code, socket reads and
writes) — and writes the collapsed stacks to ``bench/results/translate-profile-<scenario>.txt``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from sluicegate.bench import lab
from sluicegate.bench.profile import find_py_spy, parse_collapsed
from sluicegate.bench.suites import gateway_child
from sluicegate.bench.suites.inference import RawClient

# part -> what a frame's name or file contains (per sample, its innermost frame with a part decides)
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("translator (inference/translate/)", ("inference/translate/",)),
    ("uvicorn send (the write per read)", ("RequestResponseCycle.send",)),
    ("origin client (upstream/)", ("upstream/",)),
    ("intake, attempts, routing, relay", ("inference/",)),
)


def shares(stacks: Counter[tuple[str, ...]]) -> list[tuple[str, float]]:
    """Share of samples per part; the rest split into the event loop's own time and everything else."""
    total = sum(stacks.values()) or 1
    got: Counter[str] = Counter()
    for frames, n in stacks.items():
        # The innermost frame that belongs to a part decides (the translator's own frames, not its callers').
        part = next((part for f in reversed(frames) for part, needles in PARTS
                     if any(needle in f for needle in needles)), None)
        if part is not None:
            got[part] += n
        else:
            leaf = frames[-1] if frames else ""
            got["event loop (uvloop, in C)" if leaf.startswith(("run (", "Runner.run (", "run_until_complete ("))
                else "other"] += n
    return [(part, got[part] / total) for part in [p for p, _ in PARTS] + ["event loop (uvloop, in C)", "other"]]


async def _drive(url: str, payload: bytes, conc: int, seconds: float) -> int:
    from sluicegate.bench.suites.translate import closed_loop

    client = RawClient()
    try:
        await closed_loop(client, url, payload, conc, 4 * conc)  # warm-up: connections, caches
        done, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            await closed_loop(client, url, payload, conc, 4 * conc)
            done += 4 * conc
        return done
    finally:
        client.close()


def run(args: argparse.Namespace) -> int:
    from sluicegate.bench.suites.translate import PATHS, SCENARIOS, body, gateway_settings, mock_module

    if args.profile not in SCENARIOS:
        print(f"--profile: one of {', '.join(repr(s) for s in SCENARIOS)}", file=sys.stderr)
        return 2
    api, model, _, events = SCENARIOS[args.profile]
    py = sys.executable
    mock_port, gw_port = lab.free_port(), lab.free_port()
    env = dict(os.environ, PYTHONPATH=str(Path(gateway_child.PATH).parents[3]))
    mock = subprocess.Popen([py, "-m", mock_module(), "--port", str(mock_port), "--uvloop", "--chunks", "27",
                             "--first-delay-ms", "0", "--between-ms", str(args.between_ms)],
                            env=env, stdout=subprocess.DEVNULL)
    gw = subprocess.Popen([py, "-P", gateway_child.PATH, "--port", str(gw_port), "--settings",
                           json.dumps(gateway_settings(f"http://127.0.0.1:{mock_port}/v1"))], env=env)
    out = lab.results_dir() / f"translate-profile-{args.profile.replace(' -> ', '-to-').replace(' ', '-')}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        lab.wait_port(mock_port)
        lab.wait_port(gw_port)
        url = f"http://127.0.0.1:{gw_port}/llm{PATHS[api]}"
        payload = body(model, api)
        asyncio.run(_drive(url, payload, args.profile_c, 1.0))
        spy = subprocess.Popen([find_py_spy(), "record", "--pid", str(gw.pid), "--rate", "400", "--format", "raw",
                                "--output", str(out)],  # (pausing the gateway per sample: whole stacks)
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # attached before the load starts
        c0 = lab.tree_cpu_s(gw.pid)
        n = asyncio.run(_drive(url, payload, args.profile_c, args.profile_s))
        cpu = lab.tree_cpu_s(gw.pid) - c0
        spy.send_signal(signal.SIGINT)
        spy.wait(30)
    finally:
        for p in (gw, mock):
            p.terminate()
        for p in (gw, mock):
            p.wait(10)
    stacks = parse_collapsed(out.read_text()) if out.exists() else Counter()
    print(f"{args.profile}, c = {args.profile_c}: {n} streams, gateway CPU {cpu / n / events * 1e6:.1f} µs per "
          f"upstream event; {sum(stacks.values())} samples ({out})")
    for part, share in shares(stacks):
        print(f"  {share * 100:5.1f} %  {part}")
    return 0 if stacks else 1
