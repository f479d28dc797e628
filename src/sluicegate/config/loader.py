"""Reading settings: TOML file, then ``SLUICEGATE__SECTION__KEY`` environment overrides.

Errors name where the bad value came from: ``file:line: key: problem`` for the file, and
``env SLUICEGATE__...: key: problem`` for an override. Secret values never appear in messages.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from sluicegate.config.model import Settings
from sluicegate.config.types import FieldProblem

ENV_PREFIX = "SLUICEGATE__"
# Values that look like documentation placeholders, refused for secrets.
_PLACEHOLDER = re.compile(
    r"^(?:<.*>|\$\{.*\}|x{3,}|changeme|change-me|your[-_ ].*|sk-\.\.\.|.*example.*|todo|replace[-_ ]?me)$",
    re.IGNORECASE,
)
_SECRET_KEY = re.compile(r"(?:^|_)(?:api_key|secret|password|token|key)s?$")


class ConfigError(Exception):
    """One or more problems, each ``where: key: problem``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def is_placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.match(value.strip()))


def _locate(text: str) -> dict[tuple[str, ...], int]:
    """Map dotted key paths to 1-based line numbers (good enough for error messages)."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    counters: dict[tuple[str, ...], int] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^\[\[\s*([^\]]+?)\s*\]\]", line)
        if m:
            base = tuple(p.strip().strip('"') for p in m.group(1).split("."))
            idx = counters.get(base, 0)
            counters[base] = idx + 1
            table = (*base, str(idx))
            lines.setdefault(table, lineno)
            continue
        m = re.match(r"^\[\s*([^\]]+?)\s*\]", line)
        if m:
            table = tuple(p.strip().strip('"') for p in m.group(1).split("."))
            lines.setdefault(table, lineno)
            continue
        m = re.match(r'^("?[A-Za-z0-9_\-.]+"?)\s*=', line)
        if m:
            key = tuple(p.strip('"') for p in m.group(1).split("."))
            lines.setdefault((*table, *key), lineno)
    return lines


def _set_path(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for part in path[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[path[-1]] = value


def _parse_env_value(raw: str) -> Any:
    """Env values are TOML/JSON literals when they parse as one (``8081``, ``true``, ``["a"]``),
    otherwise plain strings."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        try:
            return json.loads(raw)
        except ValueError:
            return raw


def _env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    data: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
        _set_path(data, path, _parse_env_value(raw))
        origin[tuple(path)] = name
    return data, origin


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _placeholder_secrets(node: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], str]]:
    found: list[tuple[tuple[str, ...], str]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _placeholder_secrets(value, (*path, str(key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _placeholder_secrets(value, (*path, str(i)))
    elif (
        isinstance(node, str)
        and path
        and _SECRET_KEY.search(path[-1])
        and not path[-1].endswith("_env")
        and is_placeholder(node)
    ):
        found.append((path, "holds an example placeholder, not a real secret"))
    return found


def load_settings(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, overlay and validate. Raises ``ConfigError`` listing every problem found."""
    file_label = str(path) if path is not None else "<defaults>"
    text = ""
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([f"{file_label}: cannot read: {exc.strerror or exc}"]) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError([f"{file_label}: not UTF-8 text (byte {exc.start})"]) from exc
    return load_settings_text(text, file_label, environ)


def load_settings_text(text: str, file_label: str, environ: Mapping[str, str] | None = None) -> Settings:
    """``load_settings`` for text already read (the supervisor validates exactly what its workers will load)."""
    environ = os.environ if environ is None else environ
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{file_label}: invalid TOML: {exc}"]) from exc
    lines = _locate(text)
    env_data, env_origin = _env_overrides(environ)
    merged = _merge(data, env_data)

    def where(loc: tuple[str, ...]) -> str:
        for n in range(len(loc), 0, -1):
            if loc[:n] in env_origin:
                return f"env {env_origin[loc[:n]]}"
        for n in range(len(loc), 0, -1):
            if loc[:n] in lines:
                return f"{file_label}:{lines[loc[:n]]}"
        return file_label

    found: dict[tuple[str, ...], str] = {}
    for loc, msg in _placeholder_secrets(merged, ()):
        found.setdefault(loc, msg)
    try:
        # strict: no coercion anywhere ("8181" is not a port, "yes" is not a bool), for every section.
        settings = Settings.model_validate(merged, strict=True)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(str(p) for p in err["loc"])
            cause = (err.get("ctx") or {}).get("error")
            if isinstance(cause, FieldProblem):
                loc = (*loc, *(str(p) for p in cause.loc))
            found.setdefault(loc, _message(err))
        raise ConfigError([f"{where(loc)}: {_display(loc, merged)}: {msg}" for loc, msg in found.items()]) from None
    if found:
        raise ConfigError([f"{where(loc)}: {_display(loc, merged)}: {msg}" for loc, msg in found.items()])
    return settings


def locate(text: str, file_label: str, loc: tuple[str | int, ...]) -> str:
    """``file:line: dotted.key`` for a key path of a file already validated (``check-config`` warnings)."""
    keys = tuple(str(p) for p in loc)
    lines = _locate(text)
    where = file_label
    for n in range(len(keys), 0, -1):
        if keys[:n] in lines:
            where = f"{file_label}:{lines[keys[:n]]}"
            break
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        data = {}
    return f"{where}: {_display(keys, data)}"


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if err["type"] in ("int_type", "bool_type", "float_type", "string_type") and "input" in err:
        got = err["input"]
        if not isinstance(got, dict | list):
            msg += f" (got {type(got).__name__} {_short(got)})"
    return msg


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _display(loc: tuple[str, ...], data: Any) -> str:
    """Dotted key, list items named by their ``name`` (``inference.providers[openai].api_key``)."""
    out = ""
    node = data
    for part in loc:
        if isinstance(node, list) and part.isdigit():
            i = int(part)
            item = node[i] if i < len(node) else None
            name = item.get("name") if isinstance(item, dict) else None
            out += f"[{name}]" if isinstance(name, str) and name else f"[{i}]"
            node = item
        else:
            out += f".{part}" if out else part
            node = node.get(part) if isinstance(node, dict) else None
    return out


def dump_defaults(model: type[BaseModel] = Settings) -> dict[str, Any]:
    return model().model_dump()
