"""Profile choice, format negotiation, derived ETags and the origin query: the sans-IO decisions."""

from __future__ import annotations

from typing import Any

import pytest

from sluicegate.config.images import ImageOptimizerSettings
from sluicegate.images.profiles import Passthrough, Plan, Reject, Selector, negotiate, never_processed, origin_query

AVIF_BROWSER = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"


def settings(**pset: Any) -> ImageOptimizerSettings:
    base: dict[str, Any] = {
        "default_profile": "medium",
        "widths": [320, 800],
        "aspect_ratios": ["1:1", "16:9"],
        "profiles": {
            "medium": {"width": 800},
            "thumb": {"width": 320, "height": 320, "fit": "cover", "format": "jpeg", "quality": 70},
        },
    }
    base.update(pset)
    return ImageOptimizerSettings.model_validate(
        {"original_param": "_io_original", "profile_sets": {"web": base}}, strict=True
    )


def decide(sel: Selector, query: bytes, accept: str = "", path: str = "/img/a.jpg", method: str = "GET") -> Any:
    return sel.decide(method, path, query, accept)


def test_profile_by_name_and_default() -> None:
    sel = Selector(settings(), "web")
    plan = decide(sel, b"profile=thumb")
    assert isinstance(plan, Plan) and plan.profile_name == "thumb" and plan.format == "jpeg" and not plan.negotiated
    plan = decide(sel, b"", "image/webp,*/*")
    assert isinstance(plan, Plan) and plan.profile_name == "medium" and plan.format == "webp" and plan.negotiated


def test_unknown_profile_rejected_or_defaulted() -> None:
    out = decide(Selector(settings(), "web"), b"profile=huge%3Cscript%3E")
    assert isinstance(out, Reject) and out.status == 400
    assert "medium, thumb" in out.message and "<script>" not in out.message
    out = decide(Selector(settings(unknown_profile="use_default"), "web"), b"profile=huge")
    assert isinstance(out, Plan) and out.profile_name == "medium"
    out = decide(Selector(settings(), "web"), b"profile=thumb&profile=medium")
    assert isinstance(out, Reject) and out.status == 400


def test_raw_sizes_and_formats_are_not_a_client_choice() -> None:
    sel = Selector(settings(), "web")
    plan = decide(sel, b"profile=thumb&width=99999&height=1&format=png&w=5000&q=100")
    assert isinstance(plan, Plan)
    assert (plan.profile.width, plan.profile.height, plan.format, plan.profile.quality) == (320, 320, "jpeg", 70)


def test_svg_method_and_operator_switch_pass_through() -> None:
    sel = Selector(settings(), "web")
    assert decide(sel, b"profile=thumb", path="/logo.SVG") == Passthrough("svg")
    assert decide(sel, b"", path="/x/logo.svgz") == Passthrough("svg")
    assert decide(sel, b"_io_original=1") == Passthrough("original")
    assert decide(sel, b"", method="POST") == Passthrough("method")
    assert never_processed("/a.svg;v=1") and not never_processed("/a.svg.png")
    assert decide(sel, b"", path="/static/site.css") == Passthrough("extension")
    assert decide(sel, b"", path="/v/clip.mp4") == Passthrough("extension")
    for path in ("/media/8f3a", "/a/b.JPG", "/x.webp", "/y.avif", "/.png"):
        assert isinstance(decide(sel, b"", path=path), Plan), path


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (AVIF_BROWSER, "avif"),
        ("image/webp,*/*", "webp"),
        ("image/avif;q=0,image/webp", "webp"),
        ("*/*", "jpeg"),
        ("image/*", "jpeg"),
        ("", "jpeg"),
        ("image/avif;q=garbage, image/webp;q=0.5", "webp"),
    ],
)
def test_negotiation_only_explicit_types(accept: str, expected: str) -> None:
    assert negotiate(["avif", "webp", "jpeg"], accept) == expected


def test_auto_formats_order_is_the_operators() -> None:
    assert negotiate(["webp", "jpeg"], AVIF_BROWSER) == "webp"


def test_etag_round_trip_and_isolation() -> None:
    sel = Selector(settings(), "web")
    plan = decide(sel, b"", "image/webp")
    assert isinstance(plan, Plan)
    tag = plan.etag_for('"abc-123"')
    assert tag is not None and tag.startswith('W/"sgi.medium.webp.')
    assert plan.source_etags(tag) == ['"abc-123"']
    assert plan.source_etags(f'"other", {tag}') == ['"abc-123"']
    assert plan.source_etags('W/"weak-src"') == []  # the original's own tag never reaches the origin as ours
    assert plan.source_etags("*") == ["*"]
    assert plan.source_etags('"unterminated') is None
    avif = decide(sel, b"", AVIF_BROWSER)
    assert avif.source_etags(tag) == []  # another format: another representation
    thumb = decide(sel, b"profile=thumb")
    assert thumb.source_etags(tag) == []
    assert plan.etag_for("") is None and plan.etag_for('"' + "x" * 300 + '"') is None


def test_changed_profile_definition_changes_the_etag() -> None:
    a = decide(Selector(settings(), "web"), b"", "image/webp")
    changed = settings(profiles={"medium": {"width": 800, "quality": 60}})
    b = decide(Selector(changed, "web"), b"", "image/webp")
    tag = a.etag_for('"s"')
    assert tag != b.etag_for('"s"') and b.source_etags(tag) == []


def test_origin_query_drops_the_selecting_parameters() -> None:
    names = ("profile", "_io_original")
    assert origin_query(b"v=2&profile=thumb&x=%20&_io_original=1", names) == b"v=2&x=%20"
    assert origin_query(b"pro%66ile=thumb&a", names) == b"a"
    assert origin_query(b"", names) == b""
