"""Strict config: no coercion, every field validated, each error once at file:line: key (names, not indexes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluicegate.config import ConfigError, load_settings
from sluicegate.config.types import parse_duration, parse_listen


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    p = tmp_path / "sg.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(p, env or {})
    return [line.replace(str(p), "F") for line in info.value.problems]


def ok(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> object:
    p = tmp_path / "sg.toml"
    p.write_text(text)
    return load_settings(p, env or {})


def test_no_coercion(tmp_path: Path) -> None:
    assert problems(tmp_path, '[server]\nport = "8181"\n') == [
        "F:2: server.port: Input should be a valid integer (got str '8181')"]
    assert problems(tmp_path, '[publisher]\nenabled = "yes"\n') == [
        "F:2: publisher.enabled: Input should be a valid boolean (got str 'yes')"]
    assert problems(tmp_path, "[compression]\ngzip_level = 3.0\n")[0].startswith("F:2: compression.gzip_level:")
    assert problems(tmp_path, "[publisher]\npublic_hosts = \"a\"\n")[0].startswith("F:2: publisher.public_hosts:")


def test_durations_with_units(tmp_path: Path) -> None:
    s = ok(tmp_path, '[timeouts]\nconnect = "250ms"\nfirst_byte = "30s"\nidle = "2m"\norigin_keepalive = 7\n'
                     '[server]\nshutdown_timeout = "1h"\n')
    t = s.timeouts  # type: ignore[attr-defined]
    assert (t.connect, t.first_byte, t.idle, t.origin_keepalive) == (0.25, 30.0, 120.0, 7.0)
    assert s.server.shutdown_timeout == 3600.0  # type: ignore[attr-defined]
    assert problems(tmp_path, '[timeouts]\nconnect = "soon"\n') == [
        "F:2: timeouts.connect: not a duration: 'soon' (a number of seconds, or e.g. \"250ms\", \"30s\", \"5m\")"]
    assert problems(tmp_path, "[timeouts]\nconnect = true\n")[0].startswith("F:2: timeouts.connect:")
    assert parse_duration(1.5) == 1.5 and parse_duration("1.5s") == 1.5


def test_each_error_once_without_pydantic_prefix(tmp_path: Path) -> None:
    text = ('[inference]\npath_prefix = "/llm"\n\n[[inference.providers]]\nname = "openai-main"\nkind = "openai"\n'
            'api_key = "changeme"\n')
    out = problems(tmp_path, text)
    assert out == ["F:7: inference.providers[openai-main].api_key: holds an example placeholder, not a real secret"]
    assert not any("Value error" in line for line in out)


def test_cross_field_errors_have_line_and_key(tmp_path: Path) -> None:
    text = ('[inference]\npath_prefix = "/llm"\n\n[[inference.providers]]\nname = "mock-a"\nkind = "mock"\n\n'
            '[[inference.models]]\nname = "chat"\ntargets = [{ provider = "nobody", model = "m" }]\n')
    assert problems(tmp_path, text) == ["F:10: inference.models[chat].targets[0].provider: unknown provider 'nobody'"]
    text = '[[inference.providers]]\nname = "remote"\nkind = "openai"\n'
    assert problems(tmp_path, text) == [
        'F:1: inference.providers[remote].api_key_env: needs api_key_env (or api_key), or auth = "none" for '
        "keyless local servers"]
    text = '[server]\nhost = "0.0.0.0"\nport = 9901\n[admin]\nlisten = "0.0.0.0:9901"\n'
    assert problems(tmp_path, text) == ["F:5: admin.listen: the admin listener must not share the public port"]
    text = '[server]\ntls_certfile = "a.pem"\n'
    assert problems(tmp_path, text) == ["F:1: server.tls_keyfile: tls_certfile and tls_keyfile go together"]
    text = '[server]\nsupervisor = false\nworkers = 2\n'  # one process (server.single) serves alone
    assert problems(tmp_path, text) == ["F:3: server.workers: supervisor = false serves in one process: workers "
                                        "must be 1 (got 2); run more containers, or set supervisor = true"]
    ok(tmp_path, '[server]\nsupervisor = false\n')
    assert problems(tmp_path, '[server]\nsupervisor = "no"\n')[0].startswith("F:2: server.supervisor: ")


def test_env_overrides_named_by_variable(tmp_path: Path) -> None:
    out = problems(tmp_path, "[server]\nport = 8080\n", {"SLUICEGATE__SERVER__PORT": '"8181"',
                                                         "SLUICEGATE__PUBLISHER__ENABLED": "yes"})
    assert "env SLUICEGATE__SERVER__PORT: server.port: Input should be a valid integer (got str '8181')" in out
    assert "env SLUICEGATE__PUBLISHER__ENABLED: publisher.enabled: Input should be a valid boolean (got str 'yes')" \
        in out
    s = ok(tmp_path, "", {"SLUICEGATE__SERVER__PORT": "8181", "SLUICEGATE__TIMEOUTS__IDLE": "5s"})
    assert s.server.port == 8181 and s.timeouts.idle == 5.0  # type: ignore[attr-defined]


def test_fields_validated(tmp_path: Path) -> None:
    base = '[inference]\npath_prefix = "/llm"\n[[inference.providers]]\nname = "m"\nkind = "mock"\n'
    assert problems(tmp_path, base + '[inference.providers.mock]\nfault = "status=abc"\n')[0].endswith(
        "inference.providers[m].mock.fault: fault 'status' needs an HTTP status")
    assert "unknown fault 'explode'" in problems(tmp_path, base + '[inference.providers.mock]\nfault = "explode"\n')[0]
    ok(tmp_path, base + '[inference.providers.mock]\nfault = "status=429,retry_after=1,gzip,stall_after=2"\n')
    assert "must be an http(s) URL" in problems(tmp_path, '[[inference.providers]]\nname = "x"\nkind = "mock"\n'
                                                          'base_url = "ftp://a"\n')[0]
    assert problems(tmp_path, '[server]\ntrusted_proxies = ["10.0.0.0/33"]\n') == [
        "F:2: server.trusted_proxies: not a CIDR: '10.0.0.0/33'"]
    assert "not host:port" in problems(tmp_path, '[admin]\nlisten = "localhost"\n')[0]
    assert "unknown access_log field(s) $nope" in problems(tmp_path, '[server]\naccess_log = "$status $nope"\n')[0]
    assert "not a usable header name" in problems(tmp_path, '[server]\nrequest_id_header = "x id"\n')[0]
    assert problems(tmp_path, "[server]\nportt = 1\n") == ["F:2: server.portt: unknown key"]
    assert parse_listen("[::1]:9901") == ("::1", 9901)


def test_access_log_accepts_old_bool(tmp_path: Path) -> None:
    assert ok(tmp_path, "[server]\naccess_log = false\n").server.access_log is False  # type: ignore[attr-defined]
    assert ok(tmp_path, '[server]\naccess_log = "json"\n').server.access_log == "json"  # type: ignore[attr-defined]
