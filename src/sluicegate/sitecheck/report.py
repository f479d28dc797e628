"""Text rendering of a check-site report: one table row per page, then the findings of each worse page.

Must not know: browsers, the crawl.
"""

from __future__ import annotations

from sluicegate.bench.report import fmt_num, table
from sluicegate.sitecheck.compare import PageResult
from sluicegate.sitecheck.run import Report

COLUMNS = ["page", "status", "err d/p", "hyd d/p", "leaks", "refs", "hdr", "failed+", "dom", "forms", "ttfb Δms",
           "load Δms", "verdict"]
FINDINGS_SHOWN = 8


def _delta(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "-"
    d = b - a
    return ("+" if d >= 0 else "") + fmt_num(d, 0)


def _path(page: PageResult, width: int = 48) -> str:
    rest = page.url.split("://", 1)[-1]
    rest = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
    return rest if len(rest) <= width else rest[: width - 1] + "…"


def row(page: PageResult) -> list[str]:
    d, p = page.direct, page.proxied
    forms = f"{sum(f.same for f in page.forms)}/{len(page.forms)}" if page.forms else "-"
    status = str(p.status) if d.status == p.status else f"{d.status}→{p.status}"
    return [
        _path(page), status,
        f"{len(d.console_errors)}/{len(p.console_errors)}",
        f"{len(d.hydration)}/{len(p.hydration)}",
        str(len(page.leaks) + sum(len(f.leaks) for f in page.forms)),
        str(len(page.origin_refs)),
        str(len(page.header_refs)),
        str(len(page.new_failed)),
        str(page.dom_diff_count),
        forms,
        _delta(d.ttfb_ms, p.ttfb_ms),
        _delta(d.load_ms, p.load_ms),
        "WORSE" if page.worse else "ok",
    ]


def _limit(items: list[str], n: int = FINDINGS_SHOWN) -> list[str]:
    out = [f"      {x[:300]}" for x in items[:n]]
    if len(items) > n:
        out.append(f"      … {len(items) - n} more (see --json)")
    return out


def render(report: Report) -> str:
    out = [f"site  {report.site}", f"proxy {report.proxy}" + ("  (started for this check)" if report.started_proxy
                                                              else ""), ""]
    out.append(table(COLUMNS, [row(p) for p in report.pages]))
    for page in report.pages:
        if not page.worse:
            continue
        out.append("")
        out.append(f"{page.url}: " + "; ".join(page.reasons))
        if page.proxied.error:
            out.append(f"    proxied load: {page.proxied.error}")
        for title, items in (
            ("requests to the origin", page.leaks),
            ("origin references in the DOM", sorted(set(page.origin_refs))),
            ("response headers naming the origin", page.header_refs),
            ("new console errors", page.new_console_errors),
            ("new hydration warnings", page.new_hydration),
            ("new failed requests", page.new_failed),
            ("DOM differences (- direct, + proxied, hosts normalised)", page.dom_diff),
        ):
            if items:
                out.append(f"    {title}:")
                out.extend(_limit(items))
        for form in page.forms:
            if form.same:
                continue
            out.append(f"    form #{form.index} {form.method.upper()} {form.action}:")
            out.extend(_limit([*form.differences, *(f"request to the origin: {u}" for u in form.leaks)]))
    t = report.totals()
    out.append("")
    out.append(
        f"{t['pages']} page(s), {t['pages_worse']} worse through the proxy; leaks {t['leaks']}, origin refs "
        f"{t['origin_refs']} (+{t['header_refs']} in headers), console errors {t['console_errors_direct']} direct / "
        f"{t['console_errors_proxied']} proxied, DOM lines differing {t['dom_diff_lines']}, "
        f"forms {t['forms'] - t['forms_different']}/{t['forms']} same ({report.seconds:.1f} s)"
    )
    out.append("RESULT: " + ("the proxied site is WORSE" if report.worse else "no difference found"))
    return "\n".join(out) + "\n"
