"""``sluicegate check-site`` on every fixture site through a real sluicegate: what a publisher's visitors
would see must be what the origin serves, modulo the host.

These assertions are the acceptance criteria of issues #12 (§4) and #22; on a rewriter that misses an
encoding of an origin URL (text nodes, percent-encoded query values, header values, round-tripped form
fields), the matching test fails and its message names the page, the request, the header or the form.
"""

from __future__ import annotations

import pytest

from .conftest import SITES, Checked

pytestmark = pytest.mark.browser


def _show(items: list[str], n: int = 12) -> str:
    return "\n".join(items[:n]) + (f"\n… {len(items) - n} more" if len(items) > n else "")


def test_the_direct_site_is_clean(checked: Checked) -> None:
    """The fixture itself works: the crawl reaches its pages, each answers 200 with no console error when
    loaded directly, and every form gets a non-error answer directly (else the other tests prove nothing)."""
    _, least = SITES[checked.name]
    pages = checked.pages()
    assert len(pages) >= least, [p["url"] for p in pages]
    bad = [f"{p['url']}: status {p['direct']['status']}, errors {p['direct']['console_errors']}"
           for p in pages if p["direct"]["status"] != 200 or p["direct"]["console_errors"] or p["direct"]["error"]]
    assert not bad, _show(bad)
    bad_forms = [f"{f['page']} form #{f['index']}: {f['direct_status']}" for f in checked.forms()
                 if not f["direct_status"] or f["direct_status"] >= 400]
    assert not bad_forms, _show(bad_forms)


def test_no_console_errors_or_hydration_warnings_through_the_proxy(checked: Checked) -> None:
    bad = [f"{p['public_url']}: {m}" for p in checked.pages() for m in p["proxied"]["console_errors"]]
    bad += [f"{p['public_url']}: hydration: {m}" for p in checked.pages() for m in p["proxied"]["hydration"]]
    assert not bad, _show(bad)


def test_no_request_goes_to_the_origin(checked: Checked) -> None:
    leaks = [f"{p['public_url']}: {u}" for p in checked.pages() for u in p["leaks"]]
    leaks += [f"{f['page']} form #{f['index']}: {u}" for f in checked.forms() for u in f["leaks"]]
    assert not leaks, _show(leaks)


def test_no_origin_reference_in_the_dom(checked: Checked) -> None:
    refs = [f"{p['public_url']}: {len(p['origin_refs'])}× {sorted(set(p['origin_refs']))}"
            for p in checked.pages() if p["origin_refs"]]
    assert not refs, _show(refs)


def test_no_origin_reference_in_response_headers(checked: Checked) -> None:
    refs = sorted({h.rsplit(" (", 1)[0] for p in checked.pages() for h in p["header_refs"]})
    assert not refs, _show(refs)


def test_no_new_failed_request(checked: Checked) -> None:
    bad = [f"{p['public_url']}: {u}" for p in checked.pages() for u in p["new_failed"]]
    assert not bad, _show(bad)


def test_dom_equal_modulo_hosts(checked: Checked) -> None:
    bad = [f"{p['public_url']}: {p['dom_diff_count']} line(s)\n  " + "\n  ".join(p["dom_diff"][:6])
           for p in checked.pages() if p["dom_diff_count"] or p["direct"]["status"] != p["proxied"]["status"]]
    assert not bad, _show(bad, 6)


def test_every_form_gets_the_same_answer_through_the_proxy(checked: Checked) -> None:
    forms = checked.forms()
    if checked.name in ("gazette", "cms"):
        assert {f["method"] for f in forms} == {"get", "post"}
    bad = [f"{f['page']} form #{f['index']} {f['method'].upper()} {f['action']}: " + "; ".join(f["differences"])
           for f in forms if f["differences"]]
    assert not bad, _show(bad)


def test_the_proxied_site_is_no_worse(checked: Checked) -> None:
    """The whole verdict, as a user reads it: exit status 0 and "no difference found"."""
    assert checked.returncode == 0, checked.text[-6000:]
    assert "RESULT: no difference found" in checked.text
