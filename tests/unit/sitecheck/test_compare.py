"""check-site's comparison of two observations, without a browser: verdicts, DOM diff, forms, report."""

from __future__ import annotations

import json

from sluicegate.sitecheck.compare import Load, compare_form, compare_page, dom_diff, new_items, unstable_lines
from sluicegate.sitecheck.report import render
from sluicegate.sitecheck.run import Report
from sluicegate.sitecheck.sites import SiteMap

ORG, PUB = "http://127.0.0.1:5000", "http://127.0.0.1:8080"
SITE = SiteMap(ORG, PUB)


def dom(base: str) -> list[str]:
    return ["<html>", "  <head>", f'    <link href="{base}/feed/" rel="alternate">', "  <body>",
            f'    <a href="{base}/about">', f'      #text "Visit {base}/about"', "    <p>",
            '      #text "nonce 1"']


def load(base: str, **kw: object) -> Load:
    out = Load(url=base + "/", final_url=base + "/", status=200, dom=dom(base), ttfb_ms=10.0, load_ms=50.0)
    for k, v in kw.items():
        setattr(out, k, v)
    return out


def test_identical_pages_modulo_hosts_are_not_worse() -> None:
    r = compare_page(SITE, load(ORG), load(PUB))
    assert not r.worse and r.reasons == []
    assert r.dom_diff_count == 0 and r.leaks == [] and r.origin_refs == []


def test_a_request_to_the_origin_is_a_leak() -> None:
    proxied = load(PUB, requests=[{"url": PUB + "/app.js", "method": "GET", "type": "Script"},
                                {"url": ORG + "/api/x", "method": "GET", "type": "Fetch"}])
    r = compare_page(SITE, load(ORG), proxied)
    assert r.leaks == [ORG + "/api/x"]
    assert r.worse and "1 request(s) to the origin" in r.reasons


def test_unmapped_text_is_an_origin_ref_and_a_dom_difference() -> None:
    proxied = load(PUB)
    proxied.dom[5] = f'      #text "Visit {ORG}/about"'
    r = compare_page(SITE, load(ORG), proxied)
    assert r.origin_refs == ["127.0.0.1:5000"]
    assert r.dom_diff_count == 1
    assert r.dom_diff[0].startswith('- #text "Visit ⟨scheme⟩://⟨site⟩/about"')


def test_percent_encoded_origin_left_in_an_attribute_is_found() -> None:
    proxied = load(PUB)
    proxied.dom[2] = '    <link href="/embed?url=http%3A%2F%2F127.0.0.1%3A5000%2F" rel="alternate">'
    r = compare_page(SITE, load(ORG), proxied)
    assert r.origin_refs == ["127.0.0.1%3A5000"]


def test_header_naming_the_origin() -> None:
    proxied = load(PUB, headers=[{"url": PUB + "/", "name": "x-pingback", "value": ORG + "/xmlrpc.php"},
                               {"url": PUB + "/", "name": "link", "value": f"<{PUB}/wp-json/>; rel=x"}])
    r = compare_page(SITE, load(ORG), proxied)
    assert r.header_refs == [f"x-pingback: {ORG}/xmlrpc.php ({PUB}/)"]
    assert r.worse


def test_console_errors_count_only_when_new_on_the_proxied_side() -> None:
    err = [{"level": "error", "text": "Failed to load resource (" + "{}/favicon.ico)", "source": "network"}]
    direct = load(ORG, console=[{**err[0], "text": err[0]["text"].format(ORG)}])
    proxied = load(PUB, console=[{**err[0], "text": err[0]["text"].format(PUB)},
                               {"level": "error", "text": "Uncaught Error: Minified React error #418; visit",
                                "source": "exception"}])
    r = compare_page(SITE, direct, proxied)
    assert len(r.new_console_errors) == 1 and "#418" in r.new_console_errors[0]
    assert r.new_hydration == r.new_console_errors
    assert r.worse


def test_new_items_is_a_multiset_difference() -> None:
    assert new_items(["a", "a"], ["a", "a", "a"], SITE) == ["a"]
    assert new_items([ORG + "/x"], [PUB + "/x"], SITE) == []


def test_failed_requests_and_status() -> None:
    proxied = load(PUB, status=404, failed=[{"url": PUB + "/img.png", "reason": "HTTP 404"}])
    r = compare_page(SITE, load(ORG), proxied)
    assert r.new_failed == [PUB + "/img.png"]
    assert "status 200 direct, 404 proxied" in r.reasons


def test_unstable_lines_are_discounted() -> None:
    a, b = dom(ORG), dom(ORG)
    b[7] = '      #text "nonce 2"'
    proxied = dom(PUB)
    proxied[7] = '      #text "nonce 3"'
    unstable = unstable_lines(SITE, a, b)
    assert unstable == {'      #text "nonce 1"'}
    shown, count, ignored = dom_diff(SITE, a, proxied, unstable)
    assert (shown, count, ignored) == ([], 0, 1)
    # a difference in a stable line still counts
    proxied[4] = f'    <a href="{ORG}/about">'
    assert dom_diff(SITE, a, proxied, unstable)[1] == 1


def test_forms_compare_status_landing_url_and_dom() -> None:
    form = {"index": 1, "method": "post", "action": ORG + "/wp-login.php"}
    direct = load(ORG, final_url=ORG + "/wp-admin/")
    same = compare_form(SITE, ORG + "/", form, direct, load(PUB, final_url=PUB + "/wp-admin/"))
    assert same.same and same.differences == []
    refused = load(PUB, status=403, final_url=PUB + "/wp-login.php")
    refused.dom[5] = '      #text "Referer check failed"'
    diff = compare_form(SITE, ORG + "/", form, direct, refused)
    assert not diff.same
    assert diff.differences[0] == "status 200 direct, 403 proxied"
    assert diff.differences[1].startswith("landed on")
    assert "DOM line(s) differ" in diff.differences[2]
    leak = compare_form(SITE, ORG + "/", form, direct, load(PUB, final_url=PUB + "/wp-admin/",
                                                        requests=[{"url": ORG + "/wp-login.php", "method": "POST",
                                                                   "type": "Document"}]))
    assert leak.leaks == [ORG + "/wp-login.php"] and not leak.same


def test_report_text_and_json() -> None:
    good = compare_page(SITE, load(ORG), load(PUB))
    bad = compare_page(SITE, load(ORG), load(PUB, requests=[{"url": ORG + "/x.js", "method": "GET", "type": "Script"}]))
    report = Report(ORG + "/", PUB, True, [good, bad], "/usr/bin/chromium", 1.5)
    text = render(report)
    assert "RESULT: the proxied site is WORSE" in text
    assert "requests to the origin:" in text and ORG + "/x.js" in text
    assert text.count("WORSE") == 2  # the row and the result line
    data = json.loads(json.dumps(report.to_json()))
    assert data["worse"] is True and data["totals"]["leaks"] == 1 and data["totals"]["pages_worse"] == 1
    assert data["pages"][1]["reasons"] == ["1 request(s) to the origin"]
    ok = Report(ORG + "/", PUB, False, [good], "/usr/bin/chromium", 1.0)
    assert "RESULT: no difference found" in render(ok) and not ok.worse


def test_the_proxied_side_follows_the_proxied_pages_own_links() -> None:
    from sluicegate.sitecheck.run import pair_links

    enc_o, enc_p = "http%3A%2F%2F127.0.0.1%3A5000%2Fa", "http%3A%2F%2F127.0.0.1%3A8080%2Fa"
    direct = [ORG + "/a", ORG + f"/share/?u={enc_o}", "https://elsewhere.example/", ORG + "/b"]
    # the proxy rewrote the query value: the proxied side must send what the proxied page links to
    proxied = [PUB + "/a", PUB + f"/share/?u={enc_p}", "https://elsewhere.example/", PUB + "/b"]
    assert pair_links(SITE, direct, proxied)[1] == (direct[1], proxied[1])
    # an unmapped query value: matched by position, followed as the visitor would
    proxied[1] = PUB + f"/share/?u={enc_o}"
    assert pair_links(SITE, direct, proxied)[1] == (direct[1], proxied[1])
    # a proxied link still pointing at the origin is not followed off the proxy
    proxied[3] = ORG + "/b"
    assert pair_links(SITE, direct, proxied)[3] == (direct[3], PUB + "/b")
    # different link counts: modulo-hosts matches, else the mapped direct URL
    pairs = pair_links(SITE, direct, [PUB + "/b"])
    assert pairs[3] == (direct[3], PUB + "/b") and pairs[0] == (direct[0], PUB + "/a")
