"""What binds row 7 of issue 19: the inference relay next to the publisher's PassThrough of the SAME stream.

``sluicegate bench inference-floor --vs-exe /tmp/inf-base/.venv/bin/sluicegate`` (~1 min at the defaults) ->
``bench/results/inference-floor.json``. One mock provider (the litellm-bench stream of ``bench inference``:
31 events, 10 ms to the first, 1 ms apart, one 8 KiB delta) and, side by side, each as ``sluicegate serve
--workers 1`` with the access log off:

* ``baseline`` — the ``--vs-exe`` build's inference gateway (the issue's "today");
* ``inference`` — this tree's inference gateway (the row's subject);
* with ``--tree LABEL=DIR`` (repeatable): another tree's inference gateway, served from its ``--target`` build
  (e.g. ``main``), for a same-run A/B of this tree's inference code;
* ``publisher`` — this tree's publisher face with the mock as its origin, relaying the same request and the
  same SSE response as a PassThrough: no intake, no model splice, no attempts, no SSE tap, no usage — the
  serving core, the origin client and one write per event, i.e. what relaying that stream costs this build
  before any inference work.

Rounds alternate between the targets at each rate (constant arrivals, every stream read to the end by the raw
load generator of ``bench inference``); the figure is each target's gateway CPU per stream (process tree,
median of rounds) and its ratio to the baseline's. If the publisher's ratio is above 0.5, a 2x in streams per
CPU-second cannot come from the inference face's own code. The machine may be shared: CPU per stream is the
figure, not wall-clock rates. Must not import gateway internals.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sluicegate.bench import lab
from sluicegate.bench.suites.inference import CHAT_BODY, LITELLM_PROTOCOL, ROOT, RawClient, rate_round, served_config


def _publisher_config(upstream: str) -> str:
    return "\n".join(["[server]", "access_log = false", "[admin]", 'listen = ""', "[publisher]",
                      f'origin_url = "{upstream}"', 'public_hosts = ["*"]', ""])


async def run(args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    mock_port = lab.free_port()
    mock = subprocess.Popen([sys.executable, "-m", "sluicegate.dev.mock_provider", "--port", str(mock_port), "--uvloop",
                             "--chunks", str(LITELLM_PROTOCOL["chunks"]),
                             "--first-delay-ms", str(LITELLM_PROTOCOL["first_delay_ms"]),
                             "--between-ms", str(LITELLM_PROTOCOL["between_ms"]),
                             "--fault", f"big_event={LITELLM_PROTOCOL['big_event']}"], env=env,
                            stdout=subprocess.DEVNULL)
    tmp = tempfile.TemporaryDirectory(prefix="sg-bench-inference-floor-")
    upstream = f"http://127.0.0.1:{mock_port}"
    targets: dict[str, tuple[list[str], str, dict[str, str], str]] = {}  # label -> (exe, config, env, path)
    if args.vs_exe:
        clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        targets["baseline"] = ([args.vs_exe], served_config(upstream + "/v1", False, "native"), clean,
                               "/llm/v1/chat/completions")
    this = [sys.executable, "-m", "sluicegate"]
    for spec in args.tree:  # another tree's build (scripts/build_mypyc.py --target DIR), its inference gateway
        label, _, tree = spec.partition("=")
        targets[label] = (this, served_config(upstream + "/v1", True, "native"), dict(os.environ, PYTHONPATH=tree),
                          "/llm/v1/chat/completions")
    targets["inference"] = (this, served_config(upstream + "/v1", True, "native"), env, "/llm/v1/chat/completions")
    targets["publisher"] = (this, _publisher_config(upstream), env, "/v1/chat/completions")
    procs: dict[str, subprocess.Popen[bytes]] = {}
    urls: dict[str, str] = {}
    try:
        for label, (exe, conf, penv, path) in targets.items():
            port = lab.free_port()
            file = Path(tmp.name) / f"{label}.toml"
            file.write_text(conf)
            procs[label] = subprocess.Popen([*exe, "serve", "--config", str(file), "--port", str(port),
                                             "--workers", "1"], env=penv, stderr=subprocess.DEVNULL)
            urls[label] = f"http://127.0.0.1:{port}{path}"
        lab.wait_port(mock_port)
        for url in urls.values():
            lab.wait_port(int(url.split(":")[2].split("/")[0]))
        client = RawClient()
        labels = list(targets)
        for _ in range(50):  # warm-up: pools, code paths
            for label in labels:
                await client.stream(urls[label], CHAT_BODY)
        rates: dict[str, dict[str, Any]] = {}
        for rate in args.rates:
            rounds: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
            for i in range(args.rounds):
                for label in labels if i % 2 == 0 else labels[::-1]:
                    pid = procs[label].pid
                    c0 = lab.tree_cpu_s(pid)
                    r = await rate_round(client, urls[label], CHAT_BODY, rate, args.seconds)
                    r["gateway_cpu_ms_per_stream"] = 1000 * (lab.tree_cpu_s(pid) - c0) / max(1, r["completed"])
                    r["load_1m"] = os.getloadavg()[0]
                    rounds[label].append(r)
            med = {label: statistics.median(r["gateway_cpu_ms_per_stream"] for r in rs) for label, rs in rounds.items()}
            row: dict[str, Any] = {"cpu_ms_per_stream": med, "rounds": rounds}
            if "baseline" in med:
                row["ratio_to_baseline"] = {label: v / med["baseline"] for label, v in med.items()}
            rates[str(int(rate))] = row
            shown = "  ".join(f"{label} {v:.3f}" + (f" ({v / med['baseline']:.2f}x)" if "baseline" in med else "")
                              for label, v in med.items())
            print(f"{rate:>5.0f}/s  CPU ms per stream: {shown}", flush=True)
        client.close()
    finally:
        for proc in (*procs.values(), mock):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        tmp.cleanup()
    out: dict[str, Any] = {"benchmark": "inference-floor", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "baseline": args.vs_label or args.vs_exe or None, "protocol": LITELLM_PROTOCOL,
                           "rounds": args.rounds, "seconds_per_round": args.seconds, "rates": rates,
                           "load_average_at_end": os.getloadavg(),
                           "note": "gateway CPU per stream (process tree), medians of alternating rounds; shared "
                                   "machine: CPU per stream is the figure"}
    if args.vs_exe:
        for label in ("inference", "publisher", *(spec.partition("=")[0] for spec in args.tree)):
            out[f"{label}_over_baseline_median_over_rates"] = statistics.median(
                row["ratio_to_baseline"][label] for row in rates.values())
    return out


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="sluicegate bench inference-floor", description=__doc__.split("\n")[0])
    ap.add_argument("--vs-exe", metavar="PATH", help="the baseline build's venv bin/sluicegate (e.g. 24d8df3's)")
    ap.add_argument("--vs-label", default="", help="its name in the report (e.g. its commit)")
    ap.add_argument("--tree", action="append", default=[], metavar="LABEL=DIR",
                    help="also the inference gateway of another tree's build, served from DIR (PYTHONPATH) as made by "
                         "`scripts/build_mypyc.py --target DIR` in that tree (e.g. main=/tmp/main-build): a same-run "
                         "A/B of this tree's inference code against it; this tree's config (admin listener off)")
    ap.add_argument("--rates", type=float, nargs="+", default=[100, 200, 400])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--out", default=str(lab.results_dir() / "inference-floor.json"))
    return ap


def main(argv: list[str] | None = None) -> None:
    import uvloop

    args = parser().parse_args(argv)
    result = uvloop.run(run(args))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    if args.vs_exe:
        print(f"median over rates, CPU per stream / baseline: inference "
              f"{result['inference_over_baseline_median_over_rates']:.3f}, publisher PassThrough of the same stream "
              f"{result['publisher_over_baseline_median_over_rates']:.3f}"
              + "".join(f", {label} {result[f'{label}_over_baseline_median_over_rates']:.3f}"
                        for label in (spec.partition("=")[0] for spec in args.tree)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
