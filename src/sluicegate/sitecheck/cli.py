"""``sluicegate check-site URL``: argument parsing, the run, exit codes.

Exit status: 0 no page is worse through the proxy; 1 at least one is (see the report); 2 a usage or set-up
problem (bad URL, site unreachable, Chromium missing, sluicegate did not start).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path

from sluicegate.sitecheck.sites import FORMS, SiteError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "check-site", help="compare a site loaded directly and through sluicegate in headless Chromium",
        description="Loads each page of a site directly and through sluicegate in headless Chromium and reports "
                    "what the proxy broke: console errors, hydration warnings, requests that went to the origin, "
                    "failed requests, DOM differences modulo hosts, form answers, TTFB/load deltas.")
    p.add_argument("url", metavar="URL", help="the site's start page, as the origin serves it")
    p.add_argument("--pages", type=int, default=10, help="pages to check, following same-site links (default 10)")
    p.add_argument("--proxy-url", help="a running sluicegate publishing URL (default: start one on a free port)")
    p.add_argument("--alias", action="append", default=[], metavar="HOST[:PORT]",
                   help="another authority of the origin (counts as a leak too); repeatable")
    p.add_argument("--forms", choices=FORMS, default="get",
                   help="which forms to submit on both sides (default: get; 'all' also POSTs: use on test sites)")
    p.add_argument("--ignore", action="append", default=[], metavar="CSS",
                   help="leave elements matching this selector out of the DOM comparison; repeatable")
    p.add_argument("--no-baseline", dest="baseline", action="store_false",
                   help="do not reload direct pages to discount lines that change on every load")
    p.add_argument("--json", metavar="FILE", help="also write the full report as JSON ('-' for stdout only)")
    p.add_argument("--chromium", help="browser binary (default: chromium on PATH, as in the tests)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per page load (default 30)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.set_defaults(func=cmd_check_site)


def cmd_check_site(args: argparse.Namespace) -> int:
    if args.pages < 1:
        print("check-site: --pages must be at least 1", file=sys.stderr)
        return 2
    try:  # the browser side needs the 'tools' extra (aiohttp): imported here so `sluicegate` starts without it
        from sluicegate.bench.browser import ChromiumMissing, find_chromium
        from sluicegate.bench.report import Progress
        from sluicegate.sitecheck.run import CheckError, Options, base_url, check, local_proxy, reachable
    except ImportError as exc:
        print(f"check-site: {exc}", file=sys.stderr)
        return 2
    opts = Options(url=args.url, pages=args.pages, proxy_url=args.proxy_url, aliases=args.alias,
                   forms=args.forms, ignore=args.ignore, baseline=args.baseline, chromium=args.chromium,
                   timeout=args.timeout)
    try:
        chromium = find_chromium(args.chromium)
        reachable(args.url)
        with contextlib.ExitStack() as stack:
            started = opts.proxy_url is None
            if started:
                opts.proxy_url = stack.enter_context(local_proxy(base_url(args.url), opts.aliases))
            report = asyncio.run(check(opts, chromium, Progress(args.progress)))
            report.started_proxy = started
    except (ChromiumMissing, CheckError, SiteError) as exc:
        print(f"check-site: {exc}", file=sys.stderr)
        return 2
    from sluicegate.sitecheck.report import render

    if args.json == "-":
        print(json.dumps(report.to_json(), indent=1, ensure_ascii=False))
    else:
        print(render(report), end="")
        if args.json:
            Path(args.json).write_text(json.dumps(report.to_json(), indent=1, ensure_ascii=False) + "\n")
            print(f"wrote {args.json}", file=sys.stderr)
    return 1 if report.worse else 0
