"""Command-line wiring of ``sluicegate bench ...`` and ``sluicegate profile``: arguments, dispatch, output.

``register(subparsers)`` adds both commands to the main parser; every handler takes the parsed namespace
and returns an exit code (0 ok, 1 measured with errors, 2 usage or environment problem).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

from sluicegate.bench.report import Progress
from sluicegate.bench.results import Result, save

Handler = Callable[[argparse.Namespace], int]


class BenchError(Exception):
    """A problem the user can fix (bad argument, missing tool); printed without a traceback."""


def _parse_headers(values: list[str] | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in values or []:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise BenchError(f"bad header {item!r}: use 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def _positive(value: int, flag: str) -> None:
    if value < 1:
        raise BenchError(f"{flag} must be at least 1")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--save", metavar="NAME", help="write the result as JSON to NAME(.json)")
    p.add_argument("--json", action="store_true", help="print the JSON result instead of tables")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")


def _finish(args: argparse.Namespace, result: Result, text: str, failed: bool = False) -> int:
    if getattr(args, "json", False):
        print(json.dumps(result.to_json(), indent=1))
    else:
        print(text, end="" if text.endswith("\n") else "\n")
    if getattr(args, "save", None):
        path = save(result, args.save)
        print(f"saved {path}", file=sys.stderr)
    return 1 if failed else 0


def _wrap(handler: Handler) -> Handler:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except BenchError as exc:
            print(f"sluicegate bench: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return run


# ------------------------------------------------------------------------------------------------- ttfb


def cmd_ttfb(args: argparse.Namespace) -> int:
    from sluicegate.bench import ttfb

    _positive(args.n, "-n")
    headers = _parse_headers(args.header)
    specs = [ttfb.RequestSpec(url=u, method=args.method, headers=headers) for u in args.urls]
    result = Result("ttfb", {
        "urls": args.urls, "n": args.n, "method": args.method, "headers": headers,
        "timeout_s": args.timeout, "verify_tls": not args.insecure, "pause_s": args.pause,
        "connection": "new connection per request, HTTP/1.1",
    })
    asyncio.run(ttfb.run_specs(result, specs, args.n, timeout=args.timeout, verify_tls=not args.insecure,
                               pause=args.pause, progress=Progress(args.progress)))
    failed = any(
        not result.samples[s.name()]["total_ms"] for s in specs
    )
    return _finish(args, result, ttfb.render(result), failed)


# -------------------------------------------------------------------------------------------- endpoints


def cmd_endpoints(args: argparse.Namespace) -> int:
    from sluicegate.bench import endpoints, ttfb

    try:
        suite = endpoints.load_suite(args.config, base_url=args.base_url)
    except (OSError, ValueError) as exc:
        raise BenchError(str(exc)) from exc
    n = args.n or suite.n
    result = Result("endpoints", {**suite.settings(), "n": n, "timeout_s": args.timeout})
    asyncio.run(ttfb.run_specs(result, suite.specs, n, timeout=args.timeout, verify_tls=suite.verify_tls,
                               progress=Progress(args.progress)))
    failed = any(not result.samples[s.name()]["total_ms"] for s in suite.specs)
    return _finish(args, result, endpoints.render(result, suite), failed)


# ------------------------------------------------------------------------------------------------- load


def cmd_load(args: argparse.Namespace) -> int:
    from sluicegate.bench import load

    progress = Progress(args.progress)
    _positive(args.concurrency, "--concurrency")
    _positive(args.workers, "--workers")
    if args.requests is not None:
        _positive(args.requests, "--requests")
    if args.calibrate:
        result = load.calibrate(args.concurrency, args.duration or 5.0, args.workers,
                                args.server_processes, progress)
        text = "generator ceiling against the built-in trivial 2 KB server:\n" + load.render(result)
        return _finish(args, result, text)
    if not args.url:
        raise BenchError("bench load needs a URL (or --calibrate)")
    duration = None if args.requests else (args.duration or 10.0)
    settings = load.LoadSettings(
        url=args.url, concurrency=args.concurrency, duration=duration, requests=args.requests,
        workers=args.workers, timeout=args.timeout, method=args.method,
        headers=_parse_headers(args.header), body=(args.data or "").encode(), warmup=args.warmup,
    )
    try:
        result = load.run_load(settings, progress)
    except ValueError as exc:
        raise BenchError(str(exc)) from exc
    summary = result.extra["load"]
    return _finish(args, result, load.render(result), failed=summary["requests"] == 0)


# ---------------------------------------------------------------------------------------------- browser


def cmd_browser(args: argparse.Namespace) -> int:
    from sluicegate.bench import browser

    _positive(args.n, "-n")
    urls = [args.url] + ([args.vs] if args.vs else [])
    labels = urls if len(set(urls)) == len(urls) else [f"A {args.url}", f"B {args.url}"]
    try:
        result = asyncio.run(browser.measure(urls, args.n, labels=labels, chromium=args.chromium,
                                             timeout=args.timeout, progress=Progress(args.progress)))
    except browser.ChromiumMissing as exc:
        raise BenchError(str(exc)) from exc
    text = browser.render(result, labels)
    failed = any(not result.samples.get(label, {}).get("load_ms") for label in labels)
    return _finish(args, result, text, failed)


# --------------------------------------------------------------------------------------------------- ab


def cmd_ab(args: argparse.Namespace) -> int:
    from sluicegate.bench import stream_ab as ab

    _positive(args.n, "-n")
    _positive(args.browser_n, "--browser-n")
    try:
        result = ab.run(
            origin=args.origin, path=args.path, n=args.n, browser_n=args.browser_n,
            with_browser=args.browser, serve_cmd=args.serve_cmd, chromium=args.chromium,
            timeout=args.timeout, progress=Progress(args.progress),
        )
    except ab.AbError as exc:
        raise BenchError(str(exc)) from exc
    return _finish(args, result, ab.render(result))


# ---------------------------------------------------------------------------------------------- compare


def cmd_compare(args: argparse.Namespace) -> int:
    from sluicegate.bench import compare
    from sluicegate.bench.results import load as load_result

    try:
        a, b = load_result(args.a), load_result(args.b)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BenchError(f"cannot read result: {exc}") from exc
    rows = compare.compare_results(a, b)
    if not rows:
        raise BenchError("the two results have no metric in common")
    doc: dict[str, Any] = {"a": args.a, "b": args.b, "rows": [r.as_dict() for r in rows]}
    if args.plot:
        try:
            doc["plots"] = [str(p) for p in compare.plot(a, b, args.plot, args.a, args.b)]
        except compare.PlotUnavailable as exc:
            raise BenchError(str(exc)) from exc
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        print(compare.render(rows, args.a, args.b))
        for p in doc.get("plots", []):
            print(f"wrote {p}")
    return 0


# ---------------------------------------------------------------------------------------------- profile


def cmd_profile(args: argparse.Namespace) -> int:
    from sluicegate.bench import profile

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise BenchError("give the load command after '--', e.g. "
                         "sluicegate profile --config c.toml -- sluicegate bench load {url} -d 10")
    try:
        report = profile.run(
            config=args.config, command=command, out_dir=args.out, port=args.port, rate=args.rate,
            serve_cmd=args.serve_cmd, top=args.top,
        )
    except profile.ProfileError as exc:
        raise BenchError(str(exc)) from exc
    print(profile.render(report))
    return 0 if report.load_exit_code == 0 else 1


# ----------------------------------------------------------------------------------------------- suites

# The repository's own benchmarks: ``sluicegate bench NAME [ARGS...]`` runs ``sluicegate.bench.suites.MODULE``'s
# ``main(ARGS)`` (each parses its own arguments: ``sluicegate bench NAME --help``). Results: bench/results/.
SUITES: dict[str, tuple[str, str]] = {
    "relay-ttfb": ("relay_ttfb", "publisher relay: added first-body-byte / last byte, stream vs buffered vs direct"),
    "memory": ("memory", "publisher relay: peak RSS of the process tree on large bodies"),
    "throughput": ("throughput", "publisher relay under wrk vs nginx and a bare relay; CPU/request; py-spy profile"),
    "throughput-ab": ("throughput_ab", "interleaved wrk A/B of proxy variants (checkouts, env): req/s, CPU/request"),
    "server-choice": ("server_choice", "sluicegate under uvicorn vs granian (a throughput-ab preset)"),
    "serving-cores": ("serving_cores", "native HTTP/1.1 core vs uvicorn vs nginx, 2 workers, req/s + CPU/request"),
    "serving-cores-bare": ("serving_cores_bare", "the serving core alone (trivial app), native vs uvicorn: CPU/req"),
    "fairness": ("fairness", "small requests next to heavy rewrites on one worker: latency, loop lag, CPU"),
    "observability": ("observability", "cost of the access log + metrics under wrk, on vs off"),
    "observe-path": ("observe_path", "CPU per request of the observation path alone, in process"),
    "publisher": ("publisher", "relay-ttfb, memory and throughput in a row (--quick: smoke test)"),
    "slice-sweep": ("slice_sweep", "CPU cost vs loop hold per [event_loop] slice_ms / piece_bytes"),
    "codec-levels": ("codec_levels", "re-encode MB/s and ratio per codec level"),
    "stream-cost": ("stream_cost", "publisher relay CPU per response in-process, by route/coding (--ab DIR: A/B)"),
    "flight": ("flight", "Next.js-like page: HTML + inline Flight MB/s, largest hold; text/x-component MB/s"),
    "round-trip": ("round_trip", "CPU of the response-header rule, inbound mapping, form-body MB/s and hold"),
    "html": ("html", "HTML rewriter MB/s: 500 KB / 5 MB pages, 8 KB / 512 B chunks, pure and mypyc"),
    "html-fresh": ("html_fresh", "a fresh HTML rewriter's fixed cost and per-URL cost, CPU us (--ab DIR: A/B)"),
    "firstparty": ("firstparty", "rewriter MB/s with 50 signed third-party URLs; identity hook CPU; TTFB"),
    "compiled": ("compiled", "which modules gain from mypyc: pure / base / base + candidates"),
    "inference": ("inference", "inference gateway: added TTFB, streams/s of one worker, memory per stream"),
    "inference-sink": ("inference_sink", "per-event Python cost of the relay's task + send chain vs a sink"),
    "inference-floor": ("inference_floor", "inference relay vs publisher PassThrough of the same SSE vs a baseline"),
    "assets": ("assets", "asset routes vs the page path vs nginx proxy_pass: req/s, CPU per request"),
    "images": ("images", "image optimizer vs thumbor: images/CPU-s, p50/p99, peak RSS"),
    "images-engines": ("images_engines", "pyvips threads/processes vs Pillow, per image"),
    "images-account": ("images_account", "engines alone, one run: libvips vs thumbor's Pillow, per stage"),
    "images-decode": ("images_decode", "JPEG decode alone at its DCT scale: libvips vs Pillow (fast DCT too)"),
    "images-threads": ("images_threads", "image optimizer CPU per image by thread (loop/image/libvips), A/B variants"),
    "faults": ("faults", "fault suite (+ --soak) through sluicegate serve, 2 workers: corrupted/lost/RSS"),
    "stacks": ("stacks", "HTTP/1.1 vs HTTP/2 under sluicegate serve, uvicorn, hypercorn, granian (h2load)"),
    "h2-protocol": ("h2proto", "in-process CPU per request: server/h2 vs uvicorn's HTTP/1.1 protocol"),
    "teams": ("teams", "inference governance (keys + RPM/TPM + ledger) on vs off, burst exactness, vs LiteLLM"),
    "translate": ("translate", "protocol translation vs relay (and LiteLLM): CPU/event, added TTFB, streams/s"),
    "goals": ("goals", "issue 19's goals table in one run vs nginx: every row, medians of rounds; JSON + PNG"),
}


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the suite's ``with Procs()``: its servers are stopped


def cmd_suite(args: argparse.Namespace) -> int:
    import importlib
    import signal

    module = importlib.import_module(f"sluicegate.bench.suites.{SUITES[args.bench_command][0]}")
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        code = module.main(list(args.suite_args))
    finally:
        signal.signal(signal.SIGTERM, previous)
    return code if isinstance(code, int) else 0


# --------------------------------------------------------------------------------------------- register


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bench`` (with its subcommands) and ``profile`` to the main ``sluicegate`` parser."""
    bench = subparsers.add_parser("bench", help="measure TTFB, load, browser timings; compare runs",
                                  description="Measuring tools for any HTTP site (not only sluicegate).")
    sub = bench.add_subparsers(dest="bench_command", metavar="COMMAND", required=True)

    p = sub.add_parser("ttfb", help="DNS/connect/TLS/headers/first byte/last byte per URL")
    p.add_argument("urls", nargs="+", metavar="URL")
    p.add_argument("-n", type=int, default=20, help="requests per URL (default 20)")
    p.add_argument("-X", "--method", default="GET")
    p.add_argument("-H", "--header", action="append", metavar="'Name: value'")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    p.add_argument("--pause", type=float, default=0.0, help="seconds between requests")
    p.add_argument("-k", "--insecure", action="store_true", help="do not verify TLS certificates")
    _common(p)
    p.set_defaults(func=_wrap(cmd_ttfb))

    p = sub.add_parser("endpoints", help="named endpoints from a TOML file, a breakdown per endpoint")
    p.add_argument("--config", required=True, metavar="FILE")
    p.add_argument("--base-url", help="override base_url of the file")
    p.add_argument("-n", type=int, default=0, help="requests per endpoint (default: the file's n, or 10)")
    p.add_argument("--timeout", type=float, default=30.0)
    _common(p)
    p.set_defaults(func=_wrap(cmd_endpoints))

    p = sub.add_parser("load", help="keep-alive load generator: req/s, latency percentiles, errors")
    p.add_argument("url", nargs="?", metavar="URL")
    p.add_argument("-c", "--concurrency", type=int, default=64, help="connections (default 64)")
    p.add_argument("-d", "--duration", type=float, default=None, help="seconds (default 10)")
    p.add_argument("-r", "--requests", type=int, default=None, help="stop after N requests instead")
    p.add_argument("-w", "--workers", type=int, default=1, help="generator processes (default 1)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    p.add_argument("--warmup", type=float, default=0.0, help="seconds of unmeasured load first")
    p.add_argument("-X", "--method", default="GET")
    p.add_argument("-H", "--header", action="append", metavar="'Name: value'")
    p.add_argument("--data", help="request body")
    p.add_argument("--calibrate", action="store_true",
                   help="measure the generator's own ceiling against a built-in trivial 2 KB server")
    p.add_argument("--server-processes", type=int, default=1, help="trivial server processes (--calibrate)")
    _common(p)
    p.set_defaults(func=_wrap(cmd_load))

    p = sub.add_parser("browser", help="headless Chromium: TTFB, paint and navigation timings")
    p.add_argument("url", metavar="URL")
    p.add_argument("--vs", metavar="URL2", help="second URL, loaded interleaved; prints the delta table")
    p.add_argument("-n", type=int, default=8, help="page loads per URL (default 8)")
    p.add_argument("--chromium", default=None, help="browser binary (default: chromium on PATH)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per page load")
    _common(p)
    p.set_defaults(func=_wrap(cmd_browser))

    p = sub.add_parser("stream-ab", help="stream vs buffered mode in front of your origin: TTFB + browser timings")
    p.add_argument("--origin", required=True, metavar="URL")
    p.add_argument("--path", default="/", help="path requested through both proxies (default /)")
    p.add_argument("-n", type=int, default=20, help="ttfb requests per mode (default 20)")
    p.add_argument("--browser-n", type=int, default=8, help="browser loads per mode (default 8)")
    p.add_argument("--browser", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the browser timings (default yes)")
    p.add_argument("--chromium", default=None)
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--serve-cmd", default=None,
                   help="command starting the proxy, with {config} and {port} placeholders "
                        "(default: this sluicegate's 'serve')")
    _common(p)
    p.set_defaults(func=_wrap(cmd_ab))

    for name, (_module, text) in SUITES.items():
        # no options of its own: everything after NAME (also -h) goes to the suite's parser
        p = sub.add_parser(name, help=text, add_help=False, prefix_chars="\x00")
        p.add_argument("suite_args", nargs=argparse.REMAINDER)
        p.set_defaults(func=_wrap(cmd_suite))

    p = sub.add_parser("compare", help="per-metric deltas of two saved results, with a noise verdict")
    p.add_argument("a", metavar="A.json")
    p.add_argument("b", metavar="B.json")
    p.add_argument("--plot", metavar="DIR", help="write PNG plots (needs matplotlib)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_wrap(cmd_compare))

    p = subparsers.add_parser("profile", help="run the proxy under py-spy while a load command runs",
                              description="Writes a flame graph (SVG) and the top functions by self time.")
    p.add_argument("--config", required=True, metavar="FILE")
    p.add_argument("--out", default="profile-out", metavar="DIR", help="output directory")
    p.add_argument("--port", type=int, default=None, help="port for the proxy (default: a free one)")
    p.add_argument("--rate", type=int, default=200, help="samples per second (default 200)")
    p.add_argument("--top", type=int, default=25, help="functions listed (default 25)")
    p.add_argument("--serve-cmd", default=None,
                   help="command starting the proxy, with {config} and {port} placeholders")
    p.add_argument("command", nargs=argparse.REMAINDER,
                   help="-- the load command; {url} is replaced by the proxy's URL")
    p.set_defaults(func=_wrap(cmd_profile))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sluicegate")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Handler = args.func
    return func(args)
