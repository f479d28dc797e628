"""``[image_optimizer]`` loading: allowlists, bounds and errors located as file:line: key."""

from __future__ import annotations

import pytest

from sluicegate.config.loader import ConfigError, load_settings_text

BASE = """
[image_optimizer.profile_sets.web]
default_profile = "medium"
widths = [320, 800]
aspect_ratios = ["1:1", "16:9"]
[image_optimizer.profile_sets.web.profiles.medium]
width = 800
[image_optimizer.profile_sets.web.profiles.thumb]
width = 320
height = 320
fit = "cover"
crop = "attention"
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_settings_text(text, "s.toml", {})
    return exc.value.problems


def test_valid_profile_set_loads() -> None:
    s = load_settings_text(BASE, "s.toml", {}).image_optimizer
    web = s.profile_sets["web"]
    assert web.profiles["thumb"].crop == "attention" and web.unknown_profile == "reject" and web.param == "profile"
    assert s.workers == 2 and s.max_source_pixels == 64_000_000
    assert web.profiles["medium"].effort == 2  # the measured default (docs/images.md), not libwebp's 4


@pytest.mark.parametrize(
    ("edit", "where", "says"),
    [
        (("width = 800", "width = 801"), "s.toml:7: image_optimizer.profile_sets.web.profiles.medium.width",
         "not in widths"),
        (("height = 320", "height = 100"), "s.toml:10: image_optimizer.profile_sets.web.profiles.thumb.height",
         "not one of aspect_ratios"),
        (('"16:9"]', '"100:1"]'), "s.toml:5: image_optimizer.profile_sets.web.aspect_ratios", "absurd"),
        (('default_profile = "medium"', 'default_profile = "nope"'), "s.toml:3:", "no profile named 'nope'"),
        (("widths = [320, 800]", "widths = [320, 800, 100000]"), "s.toml:4:", "outside 1..8192"),
        (('fit = "cover"', 'fit = "stretch"'), "s.toml:11:", "Input should be"),
        (("width = 800", 'width = 800\nformat = "webp"\neffort = 7'),
         "s.toml:9: image_optimizer.profile_sets.web.profiles.medium.effort", "WebP's effort is 0-6"),
        (("width = 800", "width = 800\neffort = 10"),
         "s.toml:8: image_optimizer.profile_sets.web.profiles.medium.effort", "less than or equal to 9"),
    ],
)
def test_bad_profile_sets_are_located(edit: tuple[str, str], where: str, says: str) -> None:
    found = problems(BASE.replace(*edit))
    assert any(p.startswith(where) and says in p for p in found), found


def test_malloc_mmap_threshold_default_and_bounds() -> None:
    assert load_settings_text(BASE, "s.toml", {}).image_optimizer.malloc_mmap_threshold == 128 * 1024
    big = "[image_optimizer]\nmalloc_mmap_threshold = 4194304\n" + BASE
    assert load_settings_text(big, "s.toml", {}).image_optimizer.malloc_mmap_threshold == 4 * 1024 * 1024
    found = problems("[image_optimizer]\nmalloc_mmap_threshold = 4096\n" + BASE)
    assert any(p.startswith("s.toml:2: image_optimizer.malloc_mmap_threshold") for p in found), found


def test_splice_sources_default_and_off() -> None:
    assert load_settings_text(BASE, "s.toml", {}).image_optimizer.splice_sources is True
    off = "[image_optimizer]\nsplice_sources = false\n" + BASE
    assert load_settings_text(off, "s.toml", {}).image_optimizer.splice_sources is False
    found = problems("[image_optimizer]\nsplice_sources = \"sometimes\"\n" + BASE)
    assert any(p.startswith("s.toml:2: image_optimizer.splice_sources") for p in found), found


def test_cover_needs_height_and_bounds() -> None:
    text = BASE.replace("height = 320\n", "")
    assert any("needs a height" in p for p in problems(text))
    assert any("image_optimizer.workers" in p for p in problems(BASE + "\n[image_optimizer]\nworkers = 0\n"))
    assert any("max_source_pixels" in p for p in problems("[image_optimizer]\nmax_source_pixels = 10\n"))


ROUTE = """
[publisher]
origin_url = "http://127.0.0.1:9"
public_hosts = ["pub.test"]

[[publisher.routes]]
name = "img"
prefix = "/img"
kind = "asset"
origin_url = "http://127.0.0.1:9"
image_optimizer = { enabled = true, profile_set = "%s" }
"""


def test_route_names_a_defined_profile_set() -> None:
    s = load_settings_text(ROUTE % "web" + BASE, "s.toml", {})
    conf = s.publisher.routes[0].image_optimizer
    assert conf is not None and conf.enabled and conf.profile_set == "web"
    found = problems(ROUTE % "mobile" + BASE)
    assert any(p.startswith("s.toml:11: publisher.routes[img].image_optimizer") and "'mobile'" in p and "web" in p
               for p in found), found
    found = problems(ROUTE.replace('profile_set = "%s"', 'profile_set = "web", width = 9000') + BASE)
    assert any("image_optimizer.width: unknown key" in p for p in found), found
    found = problems(ROUTE.replace('enabled = true, profile_set = "%s"', "enabled = true"))
    assert any("names a profile_set" in p for p in found), found


def test_route_optimizer_off_or_on() -> None:
    from sluicegate.images import route_optimizer
    from sluicegate.images.serve import ImageOptimizer

    off = load_settings_text((ROUTE % "web").replace("enabled = true", "enabled = false") + BASE, "s.toml", {})
    assert route_optimizer(off.publisher.routes[0], off) is None
    on = load_settings_text(ROUTE % "web" + BASE, "s.toml", {})
    opt = route_optimizer(on.publisher.routes[0], on)
    assert isinstance(opt, ImageOptimizer) and opt.selector.pset.default_profile == "medium"
    assert opt.origin_target("/store/a.jpg?v=1&profile=thumb") == "/store/a.jpg?v=1"
    assert opt.origin_target("/store/a.jpg?profile=thumb") == "/store/a.jpg"


def test_building_the_optimizer_does_not_load_libvips(tmp_path: object) -> None:
    """The supervisor builds the app once to check a config (``check_buildable``): an optimizer route must
    not make it load libvips (~16 MiB resident, kept for the supervisor's life). The first image loads it."""
    import subprocess
    import sys

    code = f"""
import sys
from sluicegate.config.loader import load_settings_text
from sluicegate.server.supervisor import check_buildable
on = load_settings_text({(ROUTE % "web" + BASE)!r}, "s.toml", {{}})
check_buildable(on)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("pyvips", "_libvips") or m == "sluicegate.images.engine")
assert "sluicegate.images.serve" in sys.modules, "the optimizer was not built"
print(loaded)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
