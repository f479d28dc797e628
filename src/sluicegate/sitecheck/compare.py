"""From two observations of one page (direct, proxied) to findings, and whether the proxied side is worse.

Sans-IO: observations are plain data (``Load``), filled by ``browser`` or by a test. Must not know browsers,
sockets or how pages were found.

"Worse" means any of: a leak (a proxied request to an origin authority), an origin authority left in the
proxied DOM, a console error or hydration warning the direct page does not have, a failed request the direct
page does not have, a different status, a DOM difference modulo hosts (lines that also differ between two
direct loads are not counted), or a form answered differently. TTFB and load time are reported, never judged:
one load each is not a measurement.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from sluicegate.sitecheck.sites import SiteMap

HYDRATION = re.compile(
    r"hydrat|Minified React error #(?:418|419|421|422|423|425)\b|did not match|server rendered (?:HTML|text)"
    r"|Text content does not match",
    re.IGNORECASE,
)
DIFF_LINES_SHOWN = 40


@dataclass
class Load:
    """What one side saw for one navigation (or one form submission)."""

    url: str
    final_url: str = ""
    status: int | None = None
    error: str | None = None
    console: list[dict[str, str]] = field(default_factory=list)  # {level, text, source}
    requests: list[dict[str, str]] = field(default_factory=list)  # {url, method, type}
    failed: list[dict[str, str]] = field(default_factory=list)  # {url, reason}
    headers: list[dict[str, str]] = field(default_factory=list)  # {url, name, value}: every response header
    dom: list[str] = field(default_factory=list)
    dom_truncated: bool = False
    links: list[str] = field(default_factory=list)
    forms: list[dict[str, Any]] = field(default_factory=list)  # {index, method, action, fields}
    ttfb_ms: float | None = None
    load_ms: float | None = None

    def errors(self) -> list[str]:
        return [c["text"] for c in self.console if c["level"] == "error"]

    def hydration(self) -> list[str]:
        return [c["text"] for c in self.console if HYDRATION.search(c["text"])]


@dataclass
class SideSummary:
    status: int | None
    console_errors: list[str]
    hydration: list[str]
    failed: list[str]
    requests: int
    ttfb_ms: float | None
    load_ms: float | None
    error: str | None


@dataclass
class FormResult:
    page: str
    index: int
    method: str
    action: str
    direct_status: int | None
    proxied_status: int | None
    differences: list[str]
    leaks: list[str]

    @property
    def same(self) -> bool:
        return not self.differences and not self.leaks


@dataclass
class PageResult:
    url: str
    public_url: str
    direct: SideSummary
    proxied: SideSummary
    leaks: list[str]
    origin_refs: list[str]
    header_refs: list[str]
    new_console_errors: list[str]
    new_hydration: list[str]
    new_failed: list[str]
    dom_diff: list[str]
    dom_diff_count: int
    dom_unstable: int
    forms: list[FormResult] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        out = []
        if self.direct.error is None and self.proxied.error is not None:
            out.append(f"proxied load failed: {self.proxied.error}")
        if self.direct.status != self.proxied.status:
            out.append(f"status {self.direct.status} direct, {self.proxied.status} proxied")
        if self.leaks:
            out.append(f"{len(self.leaks)} request(s) to the origin")
        if self.origin_refs:
            out.append(f"{len(self.origin_refs)} origin reference(s) in the DOM")
        if self.header_refs:
            out.append(f"{len(self.header_refs)} response header(s) naming the origin")
        if self.new_console_errors:
            out.append(f"{len(self.new_console_errors)} new console error(s)")
        if self.new_hydration:
            out.append(f"{len(self.new_hydration)} new hydration warning(s)")
        if self.new_failed:
            out.append(f"{len(self.new_failed)} new failed request(s)")
        if self.dom_diff_count:
            out.append(f"{self.dom_diff_count} DOM line(s) differ")
        bad_forms = [f for f in self.forms if not f.same]
        if bad_forms:
            out.append(f"{len(bad_forms)} form(s) answered differently")
        return out

    @property
    def worse(self) -> bool:
        return bool(self.reasons)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["forms"] = [{**asdict(f), "same": f.same} for f in self.forms]
        out["worse"], out["reasons"] = self.worse, self.reasons
        return out


def _summary(load: Load) -> SideSummary:
    return SideSummary(
        status=load.status,
        console_errors=load.errors(),
        hydration=load.hydration(),
        failed=[f"{f['url']} ({f['reason']})" for f in load.failed],
        requests=len(load.requests),
        ttfb_ms=load.ttfb_ms,
        load_ms=load.load_ms,
        error=load.error,
    )


def new_items(direct: list[str], proxied: list[str], site: SiteMap) -> list[str]:
    """Proxied items (messages, URLs) with no direct counterpart modulo hosts, counted as a multiset."""
    left = Counter(site.norm_direct(x) for x in direct)
    out = []
    for item in proxied:
        key = site.norm_proxied(item)
        if left[key] > 0:
            left[key] -= 1
        else:
            out.append(item)
    return out


def dom_diff(site: SiteMap, direct: list[str], proxied: list[str],
             unstable: set[str] | None = None) -> tuple[list[str], int, int]:
    """(unified diff lines shown, differing line count, lines ignored as unstable) modulo hosts.

    ``unstable`` holds normalised direct lines that differed between two direct loads of the page (nonces,
    timestamps); differences confined to them are not the proxy's."""
    a = [site.norm_direct(x) for x in direct]
    b = [site.norm_proxied(x) for x in proxied]
    unstable = unstable or set()
    count = ignored = 0
    shown: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        removed, added = a[i1:i2], b[j1:j2]
        if removed and all(x in unstable for x in removed) and len(added) == len(removed):
            ignored += len(removed)
            continue
        count += max(len(removed), len(added))
        for line in removed:
            if len(shown) < DIFF_LINES_SHOWN:
                shown.append("- " + _clip(line))
        for line in added:
            if len(shown) < DIFF_LINES_SHOWN:
                shown.append("+ " + _clip(line))
    return shown, count, ignored


def unstable_lines(site: SiteMap, first: list[str], second: list[str]) -> set[str]:
    """Normalised lines of the first direct load that a second direct load did not reproduce."""
    a = [site.norm_direct(x) for x in first]
    b = [site.norm_direct(x) for x in second]
    out: set[str] = set()
    for op, i1, i2, _j1, _j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op != "equal":
            out.update(a[i1:i2])
    return out


def _clip(line: str, width: int = 240) -> str:
    line = line.strip()
    return line if len(line) <= width else line[: width - 1] + "…"


def compare_page(site: SiteMap, direct: Load, proxied: Load, unstable: set[str] | None = None) -> PageResult:
    shown, count, ignored = dom_diff(site, direct.dom, proxied.dom, unstable)
    refs: list[str] = []
    for line in proxied.dom:
        refs.extend(site.origin_refs(line))
    return PageResult(
        url=direct.url,
        public_url=proxied.url,
        direct=_summary(direct),
        proxied=_summary(proxied),
        leaks=site.leaks(r["url"] for r in proxied.requests),
        origin_refs=refs,
        header_refs=header_refs(site, proxied),
        new_console_errors=new_items(direct.errors(), proxied.errors(), site),
        new_hydration=new_items(direct.hydration(), proxied.hydration(), site),
        new_failed=new_items([f["url"] for f in direct.failed], [f["url"] for f in proxied.failed], site),
        dom_diff=shown,
        dom_diff_count=count,
        dom_unstable=ignored,
    )


def header_refs(site: SiteMap, load: Load) -> list[str]:
    """``Name: value (url)`` for every proxied response header that still names an origin authority."""
    return [f"{h['name']}: {h['value']} ({h['url']})" for h in load.headers if site.origin_refs(h["value"])]


def compare_form(site: SiteMap, page: str, form: dict[str, Any], direct: Load, proxied: Load,
                 unstable: set[str] | None = None) -> FormResult:
    """The answers to one form submitted on each side: status, final URL and DOM, modulo hosts."""
    diffs = []
    if (direct.error is None) != (proxied.error is None) or (direct.error and direct.error != proxied.error):
        diffs.append(f"submission: {direct.error or 'ok'} direct, {proxied.error or 'ok'} proxied")
    if direct.status != proxied.status:
        diffs.append(f"status {direct.status} direct, {proxied.status} proxied")
    if site.norm_direct(direct.final_url) != site.norm_proxied(proxied.final_url):
        diffs.append(f"landed on {direct.final_url} direct, {proxied.final_url} proxied")
    shown, count, _ = dom_diff(site, direct.dom, proxied.dom, unstable)
    if count:
        diffs.append(f"{count} DOM line(s) differ: " + " | ".join(shown[:6]))
    return FormResult(
        page=page,
        index=int(form["index"]),
        method=str(form["method"]),
        action=str(form["action"]),
        direct_status=direct.status,
        proxied_status=proxied.status,
        differences=diffs,
        leaks=site.leaks(r["url"] for r in proxied.requests),
    )
