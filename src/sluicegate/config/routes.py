"""``[[publisher.routes]]``: the publisher's route table (issue 16 §1-§2), typed and checked once at load.

Owns: one route (``RouteSettings``: prefix, optional public hosts, kind ``page`` | ``asset``, its backend and
TLS, per-route timeouts, the optional path rewrite and the query policy; for assets ``cache_control`` and
``s3`` signing), the compiled rewrite (``PathRewrite``), the checks across routes that make a config an error
(two routes that can never both be chosen, a host that is not served) and the ones that are only worth a
warning (``table_warnings``: nested prefixes, printed by ``check-config`` with ``file:line``).
Must not know about requests, sockets or how a route is served (``publisher.routes`` does that).

Seam for the image optimizer (engineer ``images``, issue 16 §3): an asset route's ``image_optimizer`` table
is the images config model (``config.images.ImageRouteOptimizer``); that its profile set exists is checked by
``Settings`` (config/model.py), which sees both sections; this module never interprets it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sluicegate.config.images import ImageRouteOptimizer
from sluicegate.config.origin import Authority, AuthorityList, Origin, OriginUrl
from sluicegate.config.types import Duration, FieldProblem

_FROZEN = ConfigDict(extra="forbid", frozen=True)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_GROUP_REF = re.compile(r"\$(\d+|\$)")
# characters a literal part of target_path may hold: a URL path (RFC 3986 pchar, '/' and '%')
_PATH_CHARS = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$")
DEFAULT_ROUTE = "default"  # the name of the fallback page route built from [publisher] origin_url


class RouteTimeouts(BaseModel):
    """Per-backend timeouts; an unset one is ``[timeouts]``'s."""

    model_config = _FROZEN

    connect: Duration | None = Field(default=None, gt=0)
    first_byte: Duration | None = Field(default=None, gt=0)
    idle: Duration | None = Field(default=None, gt=0)


class S3Auth(BaseModel):
    """AWS Signature V4 for an S3-compatible backend. Credentials come from the environment or a file, never
    from this table: ``access_key_id_env`` / ``secret_access_key_env`` (/ ``session_token_env``) name
    variables, or ``credentials_file`` names an AWS shared-credentials file (``profile`` section)."""

    model_config = _FROZEN

    region: str = Field(min_length=1, max_length=64)
    service: str = "s3"
    access_key_id_env: str = ""
    secret_access_key_env: str = ""
    session_token_env: str = ""
    credentials_file: str = ""
    profile: str = "default"

    @field_validator("region", "service")
    @classmethod
    def _token(cls, value: str) -> str:
        if not re.match(r"^[a-z0-9-]+$", value):
            raise ValueError(f"not a region/service name: {value!r}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> S3Auth:
        env = bool(self.access_key_id_env or self.secret_access_key_env)
        if env and self.credentials_file:
            raise FieldProblem(
                ("credentials_file",), "give credentials by *_env names or by credentials_file, not both"
            )
        if not env and not self.credentials_file:
            raise FieldProblem(
                ("access_key_id_env",),
                "S3 credentials come from the environment (access_key_id_env + secret_access_key_env) "
                "or from credentials_file; secrets are never written in the config",
            )
        if env and not (self.access_key_id_env and self.secret_access_key_env):
            missing = "secret_access_key_env" if self.access_key_id_env else "access_key_id_env"
            raise FieldProblem((missing,), "access_key_id_env and secret_access_key_env go together")
        return self


class PathRewrite:
    """``path_pattern`` (matched against the whole decoded path) and ``target_path`` with ``$N`` groups."""

    __slots__ = ("parts", "pattern")

    def __init__(self, pattern: str, target: str) -> None:
        self.pattern = re.compile(pattern)
        # target as literal strings and group numbers, compiled once
        self.parts: list[str | int] = []
        pos = 0
        for m in _GROUP_REF.finditer(target):
            if m.start() > pos:
                self.parts.append(target[pos : m.start()])
            ref = m.group(1)
            if ref == "$":
                self.parts.append("$")
            else:
                self.parts.append(int(ref))
            pos = m.end()
        if pos < len(target):
            self.parts.append(target[pos:])

    def apply(self, path: str, quote: Any) -> str | None:
        """The target path, or ``None`` when ``path`` does not match. Groups are percent-encoded by ``quote``."""
        m = self.pattern.fullmatch(path)
        if m is None:
            return None
        out = []
        for part in self.parts:
            if isinstance(part, int):
                out.append(quote(m.group(part) or ""))
            else:
                out.append(part)
        return "".join(out)


class RouteSettings(BaseModel):
    """One ``[[publisher.routes]]`` entry."""

    model_config = _FROZEN

    name: str
    prefix: str
    kind: Literal["page", "asset"]
    origin_url: OriginUrl
    hosts: list[str] = Field(default_factory=list)  # public hosts this route is for; empty = every one
    origin_aliases: AuthorityList = Field(default_factory=list)  # page routes: rewritten like origin_url
    origin_host_header: str = ""  # Host sent to the backend instead of origin_url's authority
    verify_tls: bool = True
    timeouts: RouteTimeouts = RouteTimeouts()
    path_pattern: str = ""  # regex over the whole decoded request path; no match -> 404
    target_path: str = ""  # the backend path, "$1".."$9" = groups of path_pattern
    query: Literal["preserve", "strip"] = "preserve"
    # asset routes only
    cache_control: str = ""  # replaces the backend's Cache-Control on 2xx/304, applied last
    s3: S3Auth | None = None
    # images seam (issue 16 §3): config/images.py's model, e.g. { enabled = true, profile_set = "web" }
    image_optimizer: ImageRouteOptimizer | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"not a route name (1-64 of [A-Za-z0-9_.-], it is a metric label): {value!r}")
        if value == DEFAULT_ROUTE:
            raise ValueError(f"{DEFAULT_ROUTE!r} is the name of the [publisher] origin_url route")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"a prefix is a path starting with '/': {value!r}")
        if any(c in value for c in "?#%\\ \t\r\n") or "/../" in value + "/" or "/./" in value + "/":
            raise ValueError(f"a prefix is a plain decoded path (no ?, #, %, spaces or dot segments): {value!r}")
        return value

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            if not host or host == "*" or any(c in host for c in "/ \t@"):
                raise ValueError(f"not a host[:port]: {host!r}")
        return [h.lower() for h in value]

    @field_validator("origin_host_header")
    @classmethod
    def _host_header(cls, value: str) -> str:
        if value:
            Authority.parse(value)
        return value

    @field_validator("path_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        if value:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"bad regex: {exc}") from None
        return value

    @field_validator("cache_control")
    @classmethod
    def _cache_control(cls, value: str) -> str:
        if any(c in value for c in "\r\n\0"):
            raise ValueError("a header value cannot hold CR, LF or NUL")
        return value.strip()

    @model_validator(mode="after")
    def _consistent(self) -> RouteSettings:
        if self.target_path and not self.path_pattern:
            raise FieldProblem(("target_path",), "target_path needs path_pattern (its $N are that regex's groups)")
        if self.path_pattern and self.target_path:
            self._check_target()
        if self.kind == "page":
            for key in ("cache_control", "s3", "image_optimizer"):
                if getattr(self, key):
                    raise FieldProblem((key,), f"{key} is for asset routes (kind = \"asset\")")
        elif self.origin_aliases:
            raise FieldProblem(("origin_aliases",), "asset routes are never rewritten: origin_aliases is for pages")
        return self

    def _check_target(self) -> None:
        target = self.target_path
        groups = re.compile(self.path_pattern).groups
        for m in _GROUP_REF.finditer(target):
            if m.group(1) != "$" and not 1 <= int(m.group(1)) <= groups:
                raise FieldProblem(
                    ("target_path",), f"${m.group(1)} names no group of path_pattern (it has {groups})"
                )
        literal = _GROUP_REF.sub("", target)
        if not _PATH_CHARS.match(literal):
            raise FieldProblem(("target_path",), f"not a URL path (spaces, ?, # or controls): {target!r}")
        if not target.startswith("$"):
            if not target.startswith("/"):
                raise FieldProblem(("target_path",), f"the target path must start with '/': {target!r}")
        else:
            # starts with a group: detectable when that group's pattern cannot start with '/'
            first = _GROUP_REF.match(target)
            assert first is not None
            if first.group(1) == "$":
                raise FieldProblem(("target_path",), f"the target path must start with '/': {target!r}")

    @property
    def origin(self) -> Origin:
        return Origin.parse(self.origin_url)

    @property
    def rewrite(self) -> PathRewrite | None:
        if not self.path_pattern:
            return None
        return PathRewrite(self.path_pattern, self.target_path or "")

    def serves_host(self, host: str) -> bool:
        return not self.hosts or host in self.hosts


def prefix_covers(outer: str, inner: str) -> bool:
    """Every path ``inner`` matches is also matched by ``outer`` (segment-boundary prefixes)."""
    if outer == inner:
        return True
    if outer.endswith("/"):
        return inner.startswith(outer)
    return inner.startswith(outer + "/") or inner == outer


def check_table(routes: Sequence[RouteSettings], public_hosts: Sequence[str]) -> None:
    """Errors across routes: duplicate names, a route no request can reach. Raises ``FieldProblem``
    located at ``routes[i].key`` (relative to ``[publisher]``)."""
    names: dict[str, int] = {}
    for i, r in enumerate(routes):
        if r.name in names:
            raise FieldProblem(("routes", i, "name"), f"route name {r.name!r} is used twice")
        names[r.name] = i
        if "*" not in public_hosts:
            for host in r.hosts:
                if host not in public_hosts:
                    raise FieldProblem(
                        ("routes", i, "hosts"),
                        f"unreachable: host {host!r} is not in publisher.public_hosts (it would get 421)",
                    )
    for i, r in enumerate(routes):
        for j in range(i):
            o = routes[j]
            if o.prefix != r.prefix:
                continue
            same = set(o.hosts) & set(r.hosts) if o.hosts and r.hosts else set(o.hosts or r.hosts)
            if not o.hosts and not r.hosts:
                raise FieldProblem(
                    ("routes", i, "prefix"),
                    f"unreachable: route {r.name!r} has the same prefix {r.prefix!r} as route {o.name!r}",
                )
            if o.hosts and r.hosts and same:
                raise FieldProblem(
                    ("routes", i, "prefix"),
                    f"unreachable: route {r.name!r} has the same prefix {r.prefix!r} and host(s) "
                    f"{', '.join(sorted(same))} as route {o.name!r}",
                )


def table_warnings(routes: Sequence[RouteSettings]) -> list[tuple[tuple[str | int, ...], str]]:
    """Legal but worth knowing: a prefix nested in another's (longest prefix decides), a ``path_pattern`` that
    does not match its own prefix (its requests would get 404), a route that leaves ``origin_url`` unused."""
    out: list[tuple[tuple[str | int, ...], str]] = []
    for i, r in enumerate(routes):
        if r.prefix == "/" and not r.hosts:
            out.append((
                ("routes", i, "prefix"),
                f"route {r.name!r} takes every path on every host: origin_url (the default page route) is never used",
            ))
        for j, o in enumerate(routes):
            if i == j or o.prefix in (r.prefix, "/"):  # under "/" every prefix nests: no news
                continue
            if prefix_covers(o.prefix, r.prefix) and (not o.hosts or not r.hosts or set(o.hosts) & set(r.hosts)):
                out.append((
                    ("routes", i, "prefix"),
                    f"overlaps route {o.name!r} ({o.prefix!r}): paths under {r.prefix!r} go to {r.name!r} "
                    f"({r.kind}), the rest of {o.prefix!r} to {o.name!r} ({o.kind})",
                ))
        if r.path_pattern:
            pattern = re.compile(r.path_pattern)
            probe = r.prefix if r.prefix.endswith("/") else r.prefix + "/"
            if not _could_match(pattern, r.prefix) and not _could_match(pattern, probe):
                out.append((
                    ("routes", i, "path_pattern"),
                    f"path_pattern {r.path_pattern!r} does not match paths starting with {r.prefix!r}: "
                    "check that every request of this route would not get 404",
                ))
    return out


def _could_match(pattern: re.Pattern[str], prefix: str) -> bool:
    """Cheap test: the pattern matches the prefix itself or the prefix followed by a typical tail."""
    return any(pattern.fullmatch(prefix + tail) for tail in ("", "x", "x.png", "a/b.css", "index.html"))
