"""``sluicegate keys create|list|show|enable|disable|rotate|delete`` and ``sluicegate usage``.

``keys create`` and ``keys rotate`` print the new secret alone on their last stdout line (scripts take
``tail -n1``); it is never shown again. Exit codes: 0 done, 2 bad config/arguments/unknown key.
Must not know about HTTP or the stores' SQL.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sluicegate.teams.keys import KeyRecord


def _admin(path: str) -> Any:
    """The key store the settings file names; problems printed (``file:line: key: problem``), None then."""
    from sluicegate.config import ConfigError, load_settings_text
    from sluicegate.teams.manage import KeyAdmin

    try:
        text = Path(path).read_text(encoding="utf-8")
        return KeyAdmin(load_settings_text(text, path).inference)
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
    except UnicodeDecodeError as exc:
        print(f"{path}: not UTF-8 text (byte {exc.start})", file=sys.stderr)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
    except ValueError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
    return None


def _show(rec: KeyRecord) -> None:
    for k, v in rec.public().items():
        if isinstance(v, list):
            v = ",".join(v) or "(any)"
        elif isinstance(v, dict):
            v = json.dumps(v) if v else "-"
        print(f"{k:12} {'-' if v is None else v}")


def _cmd_keys(args: argparse.Namespace) -> int:
    from sluicegate.teams.manage import ManageError

    admin = _admin(args.config)
    if admin is None:
        return 2
    try:
        action = args.action
        if action == "create":
            if args.budget is None and args.period is not None:
                raise ManageError("--period goes with --budget")
            from sluicegate.teams.manage import parse_model_limit

            secret, rec = admin.create(
                args.name, models=(args.models or "").split(","), cidrs=(args.cidrs or "").split(","),
                rpm=args.rpm, tpm=args.tpm, max_streams=args.max_streams, budget=args.budget,
                period=args.period or "month", model_limits=dict(parse_model_limit(v) for v in args.model_limit))
            _show(rec)
            print("store this key now, it is not shown again:")
            print(secret)
        elif action == "list":
            recs = admin.list_keys()
            if args.json:
                print(json.dumps([r.public() for r in recs], indent=1))
            else:
                print(f"{'id':18} {'name':24} {'hint':16} {'enabled':8} {'rpm':>8} {'tpm':>10} {'streams':>8} budget")
                for r in recs:
                    budget = f"{r.budget:g}/{r.period}" if r.budget is not None else "-"
                    print(f"{r.id:18} {r.name:24} {r.hint:16} {str(r.enabled).lower():8} {r.rpm or '-':>8} "
                          f"{r.tpm or '-':>10} {r.max_streams or '-':>8} {budget}")
        elif action == "show":
            rec = admin.get(args.key)
            print(json.dumps(rec.public(), indent=1)) if args.json else _show(rec)
        elif action in ("disable", "enable"):
            rec = admin.set_enabled(args.key, action == "enable")
            print(f"{rec.id} ({rec.name}) {action}d")
        elif action == "rotate":
            secret, rec = admin.rotate(args.key)
            print(f"{rec.id} ({rec.name}) rotated; the old key stops working within key_cache_ttl")
            print(secret)
        elif action == "delete":
            admin.delete(args.key)
            print(f"{args.key} deleted")
    except ManageError as exc:
        print(f"sluicegate keys {args.action}: {exc}", file=sys.stderr)
        return 2
    finally:
        admin.close()
    return 0


def _cmd_usage(args: argparse.Namespace) -> int:
    from sluicegate.teams.manage import ManageError

    admin = _admin(args.config)
    if admin is None:
        return 2
    try:
        rows = admin.usage(args.by, args.since)
    except ManageError as exc:
        print(f"sluicegate usage: {exc}", file=sys.stderr)
        return 2
    finally:
        admin.close()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{args.by:24} {'requests':>9} {'ok':>9} {'input':>12} {'output':>12} {'cached':>10} {'cost USD':>12}")
    for r in rows:
        print(f"{r[args.by]!s:24} {r['requests']:>9} {r['ok']:>9} {r['input_tokens']:>12} "
              f"{r['output_tokens']:>12} {r['cached_tokens']:>10} {r['cost']:>12.6f}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("keys", help="manage virtual keys of the inference gateway")
    ksub = p.add_subparsers(dest="action", required=True)
    c = ksub.add_parser("create", help="create a key; prints it alone on the last line (shown once)")
    c.add_argument("--name", required=True)
    c.add_argument("--models", help="comma-separated model names the key may use (default: all)")
    c.add_argument("--cidrs", help="comma-separated source networks the key may be used from (default: any)")
    c.add_argument("--rpm", type=int, help="requests per minute (sliding window)")
    c.add_argument("--tpm", type=int, help="tokens per minute (sliding window; input + output)")
    c.add_argument("--max-streams", type=int, dest="max_streams", help="requests in flight at once")
    c.add_argument("--budget", type=float, help="USD per period (prices from [inference.prices])")
    c.add_argument("--period", choices=("day", "month"), help="budget period (default month)")
    c.add_argument("--model-limit", action="append", default=[], dest="model_limit", metavar="MODEL:rpm=N,tpm=N",
                   help="a window for one model inside the key's own (repeatable)")
    lst = ksub.add_parser("list", help="list keys (never their secrets)")
    lst.add_argument("--json", action="store_true")
    for action, what in (("show", "show one key"), ("disable", "refuse a key (401) until enabled"),
                         ("enable", "accept a disabled key again"), ("rotate", "replace a key's secret"),
                         ("delete", "delete a key (its ledger rows stay)")):
        a = ksub.add_parser(action, help=what)
        a.add_argument("key", help="key id or name")
        if action == "show":
            a.add_argument("--json", action="store_true")
    for q in [c, lst, *[ksub.choices[a] for a in ("show", "disable", "enable", "rotate", "delete")]]:
        q.add_argument("--config", required=True, help="settings file")
    p.set_defaults(func=_cmd_keys)

    u = sub.add_parser("usage", help="usage report from the ledger")
    u.add_argument("--config", required=True, help="settings file")
    u.add_argument("--by", choices=("key", "model", "day"), default="key")
    u.add_argument("--since", default="30d", help="e.g. 7d, 12h (default 30d)")
    u.add_argument("--json", action="store_true")
    u.set_defaults(func=_cmd_usage)
