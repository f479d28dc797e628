"""The route table's config checks (file:line errors, check-config warnings) and route selection."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from sluicegate.config import ConfigError, load_settings_text
from sluicegate.config.routes import PathRewrite, prefix_covers
from sluicegate.publisher.routes import PublisherRoutes, _has_dot_segment

HEAD = """
[publisher]
origin_url = "http://127.0.0.1:9000"
public_hosts = ["pub.test", "img.pub.test"]
"""


def route(name: str, prefix: str, **extra: str) -> str:
    lines = [f'\n[[publisher.routes]]\nname = "{name}"\nprefix = "{prefix}"']
    extra.setdefault("kind", "asset")
    extra.setdefault("origin_url", "http://127.0.0.1:9100")
    for k, v in extra.items():
        lines.append(f"{k} = {v}" if v.startswith(("[", "{")) else f'{k} = "{v}"')
    return "\n".join(lines) + "\n"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings_text(text, "site.toml", environ={})
    return info.value.problems


def line_of(text: str, needle: str, nth: int = 1) -> int:
    found = 0
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            found += 1
            if found == nth:
                return i
    raise AssertionError(needle)


def test_same_prefix_twice_is_unreachable_with_file_line() -> None:
    text = HEAD + route("a", "/static") + route("b", "/static")
    [msg] = problems(text)
    n = line_of(text, 'prefix = "/static"', 2)
    assert msg.startswith(f"site.toml:{n}: publisher.routes[b].prefix:")
    assert "unreachable" in msg and "'a'" in msg


def test_same_prefix_on_other_hosts_is_fine() -> None:
    text = HEAD + route("a", "/", hosts='["img.pub.test"]') + route("b", "/", hosts='["pub.test"]')
    s = load_settings_text(text, "site.toml", environ={})
    assert [r.name for r in s.publisher.routes] == ["a", "b"]


def test_host_not_served_is_unreachable() -> None:
    [msg] = problems(HEAD + route("a", "/x", hosts='["other.test"]'))
    assert "publisher.routes[a].hosts" in msg and "not in publisher.public_hosts" in msg


def test_bad_regex_with_file_line() -> None:
    text = HEAD + route("a", "/x", path_pattern="^/x/(unclosed$", target_path="/$1")
    [msg] = problems(text)
    assert msg.startswith(f"site.toml:{line_of(text, 'path_pattern')}: publisher.routes[a].path_pattern: bad regex")


@pytest.mark.parametrize(
    ("target", "why"),
    [("files/$1", "must start with '/'"), ("/f/$2", "$2 names no group"), ("/a b/$1", "not a URL path"),
     ("/f?x=$1", "not a URL path")],
)
def test_target_path_checked_at_load(target: str, why: str) -> None:
    [msg] = problems(HEAD + route("a", "/x", path_pattern="^/x/(.*)$", target_path=target))
    assert "publisher.routes[a].target_path" in msg and why in msg


def test_target_without_pattern_and_asset_keys_on_pages() -> None:
    [msg] = problems(HEAD + route("a", "/x", target_path="/y"))
    assert "target_path needs path_pattern" in msg
    [msg] = problems(HEAD + route("a", "/x", kind="page", cache_control="public"))
    assert "routes[a].cache_control" in msg and "asset routes" in msg


def test_names_prefixes_and_s3_credentials_never_in_toml() -> None:
    assert "route name" in problems(HEAD + route("bad name", "/x"))[0]
    assert "'default' is the name" in problems(HEAD + route("default", "/x"))[0]
    assert "a prefix is a path" in problems(HEAD + route("a", "x"))[0]
    assert "dot segments" in problems(HEAD + route("a", "/x/../y"))[0]
    [msg] = problems(HEAD + route("a", "/x", s3='{ region = "us-east-1" }'))
    assert "routes[a].s3.access_key_id_env" in msg and "never written in the config" in msg
    [msg] = problems(HEAD + route("a", "/x", s3='{ region = "us-east-1", secret_access_key = "abc" }'))
    assert "unknown key" in msg  # a secret value has no key to go in


def test_path_rewrite_groups_are_quoted() -> None:
    rw = PathRewrite("^/img/(.*)$", "/bucket/$1$$")
    q = lambda s: quote(s, safe="/")  # noqa: E731
    assert rw.apply("/img/a b/ü.png", q) == "/bucket/a%20b/%C3%BC.png$"
    assert rw.apply("/other", q) is None


def test_prefix_boundaries_and_dot_segments() -> None:
    assert prefix_covers("/blog", "/blog/a") and not prefix_covers("/blog", "/blogger")
    assert prefix_covers("/", "/x") and prefix_covers("/a/", "/a/b")
    assert _has_dot_segment("/a/../b") and _has_dot_segment("/a/.") and not _has_dot_segment("/a/.well-known/x")


def test_longest_prefix_wins_and_host_bound_first() -> None:
    text = HEAD + route("all", "/") + route("img", "/img", hosts='["img.pub.test"]') + route("imgs", "/img") + route(
        "deep", "/img/thumbs/"
    )
    routes = PublisherRoutes(load_settings_text(text, "site.toml", environ={}))

    def pick(path: str, host: str = "pub.test") -> str:
        e = routes.select(path, host, "http")
        return e.name if e is not None else "default"

    assert pick("/img/x.png") == "imgs"
    assert pick("/img/x.png", "img.pub.test") == "img"
    assert pick("/img/thumbs/x.png", "img.pub.test") == "deep"
    assert pick("/imgx") == "all"
    assert pick("/") == "all"


def test_check_config_prints_warnings_with_file_line(tmp_path: Path) -> None:
    text = HEAD + route("blog", "/blog", kind="page") + route("blog-assets", "/blog/assets") + route(
        "never", "/n", path_pattern="^/m/(.*)$", target_path="/$1"
    ) + route("everything", "/")
    path = tmp_path / "site.toml"
    path.write_text(text)
    out = subprocess.run([sys.executable, "-m", "sluicegate", "check-config", str(path)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    overlap = next(x for x in lines if "overlaps" in x)
    assert sum("overlaps" in x for x in lines) == 1  # nesting under the catch-all "/" is not reported
    n = line_of(text, 'prefix = "/blog/assets"')
    assert overlap.startswith(f"{path}:{n}: publisher.routes[blog-assets].prefix")
    assert "go to 'blog-assets' (asset)" in overlap
    assert any(x.startswith(f"{path}:{line_of(text, 'path_pattern')}: publisher.routes[never].path_pattern")
               for x in lines)
    n = line_of(text, 'prefix = "/"')
    assert f"{path}:{n}: publisher.routes[everything].prefix: warning: route 'everything' takes every path" in (
        out.stderr)
