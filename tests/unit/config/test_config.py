"""Config: one typed model, file:line errors, unknown keys, env overlay, placeholder secrets."""

from pathlib import Path

import pytest

from sluicegate.cli import main
from sluicegate.config import ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sg.toml"
    p.write_text(text)
    return p


def test_defaults_load() -> None:
    s = load_settings(None, {})
    assert s.server.port == 8080 and s.publisher.mode == "stream"
    assert s.limits.max_decoded_body_bytes == 256 * 1024 * 1024


def test_errors_name_file_line_key(tmp_path: Path) -> None:
    p = write(tmp_path, '[server]\nport = 8080\nbogus = 1\n\n[publisher]\norigin_url = "ftp://x"\nmode = "fast"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(p, {})
    problems = info.value.problems
    assert f"{p}:3: server.bogus: unknown key" in problems
    assert any(x.startswith(f"{p}:6: publisher.origin_url:") for x in problems)
    assert any(x.startswith(f"{p}:7: publisher.mode:") for x in problems)


def test_unknown_section(tmp_path: Path) -> None:
    p = write(tmp_path, "[sever]\nport = 1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(p, {})
    assert info.value.problems == [f"{p}:1: sever: unknown key"]


def test_invalid_toml(tmp_path: Path) -> None:
    p = write(tmp_path, "[server\nport=")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(p, {})


def test_env_overlay_typed_and_nested(tmp_path: Path) -> None:
    p = write(tmp_path, "[server]\nport = 8080\n")
    s = load_settings(
        p,
        {
            "SLUICEGATE__SERVER__PORT": "9191",
            "SLUICEGATE__PUBLISHER__PUBLIC_HOSTS": '["a.example"]',
            "SLUICEGATE__TIMEOUTS__IDLE": "2.5",
            "OTHER": "x",
        },
    )
    assert s.server.port == 9191 and s.publisher.public_hosts == ["a.example"] and s.timeouts.idle == 2.5


def test_env_errors_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, {"SLUICEGATE__SERVER__WORKERS": "0"})
    assert info.value.problems[0].startswith("env SLUICEGATE__SERVER__WORKERS: server.workers:")


def test_trusted_proxies_validated(tmp_path: Path) -> None:
    p = write(tmp_path, '[server]\ntrusted_proxies = ["10.0.0.0/8", "nonsense"]\n')
    with pytest.raises(ConfigError, match="not a CIDR"):
        load_settings(p, {})


def test_check_config_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(
        tmp_path, '[publisher]\norigin_url = "https://origin.example.com"\npublic_hosts = ["www.example.com"]\n'
    )
    assert main(["check-config", str(good)]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[limits]\nmax_decoded_body_bytes = 1\n")
    assert main(["check-config", str(bad)]) == 2
    assert f"{bad}:2: limits.max_decoded_body_bytes:" in capsys.readouterr().err


REAL_PROVIDER = """
[inference]
path_prefix = "/llm"

[[inference.providers]]
name = "openai-main"
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"

[[inference.models]]
name = "fast"
targets = [{ provider = "openai-main", model = "gpt-4.1-mini" }]
"""


def test_open_gateway_on_public_address_refused(tmp_path: Path) -> None:
    p = write(tmp_path, REAL_PROVIDER)
    assert load_settings(p, {}).server.host == "127.0.0.1"  # loopback: fine
    with pytest.raises(ConfigError, match=r"open to anyone on 0\.0\.0\.0"):
        load_settings(p, {"SLUICEGATE__SERVER__HOST": "0.0.0.0"})
    ok = load_settings(p, {"SLUICEGATE__SERVER__HOST": "0.0.0.0", "SLUICEGATE__INFERENCE__CLIENT_KEYS_ENV": "KEYS"})
    assert ok.inference.client_keys_env == "KEYS"


def test_placeholder_secret_refused_without_echoing_it(tmp_path: Path) -> None:
    text = REAL_PROVIDER.replace('api_key_env = "OPENAI_API_KEY"', 'api_key = "sk-..."')
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(p, {})
    message = str(info.value)
    assert "inference.providers[openai-main].api_key" in message and "placeholder" in message
    assert f"{p}:" in message
    assert "sk-..." not in message


def test_serve_refuses_missing_secret_env(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = write(tmp_path, REAL_PROVIDER)
    assert main(["check-config", str(p)]) == 2
    assert "OPENAI_API_KEY" in capsys.readouterr().err
