"""Config of protocol translation: keys, defaults, and file:line:key errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluicegate.config.loader import ConfigError, load_settings

BASE = """
[inference]
path_prefix = "/llm"

[[inference.providers]]
name = "an"
kind = "anthropic"
api_key = "sk-ant-live-cfgtest"
{provider_extra}

[[inference.providers]]
name = "local"
kind = "openai-compatible"
base_url = "http://127.0.0.1:8000/v1"
auth = "none"
apis = ["chat", "responses"]

[[inference.models]]
name = "m"
targets = [{{ provider = "an", model = "claude" }}]
{model_extra}
"""


def load(tmp_path: Path, provider_extra: str = "", model_extra: str = "") -> object:
    p = tmp_path / "sluicegate.toml"
    p.write_text(BASE.format(provider_extra=provider_extra, model_extra=model_extra))
    return load_settings(p, {})


def test_defaults_and_keys(tmp_path: Path) -> None:
    s = load(tmp_path, model_extra='translate = "never"\ndefault_max_tokens = 2048\ndrop_params = ["logprobs", "n"]')
    m = s.inference.models[0]  # type: ignore[attr-defined]
    assert (m.translate, m.default_max_tokens, m.drop_params) == ("never", 2048, ["logprobs", "n"])
    assert s.inference.providers[1].apis == ["chat", "responses"]  # type: ignore[attr-defined]
    d = load(tmp_path).inference.models[0]  # type: ignore[attr-defined]
    assert (d.translate, d.default_max_tokens, d.drop_params) == ("auto", 4096, [])


@pytest.mark.parametrize(("provider_extra", "model_extra", "needle"), [
    ("", 'translate = "sometimes"', "inference.models[m].translate"),
    ("", "default_max_tokens = 0", "inference.models[m].default_max_tokens"),
    ("", 'drop_params = ["Bad Name"]', "inference.models[m].drop_params"),
    ('apis = ["chat"]', "", "inference.providers[an].apis"),
])
def test_errors_name_file_line_and_key(tmp_path: Path, provider_extra: str, model_extra: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, provider_extra, model_extra)
    text = str(err.value)
    assert needle in text and "sluicegate.toml:" in text, text


def test_apis_must_include_chat(tmp_path: Path) -> None:
    p = tmp_path / "sluicegate.toml"
    p.write_text(BASE.format(provider_extra="", model_extra="").replace('apis = ["chat", "responses"]',
                                                                         'apis = ["responses"]'))
    with pytest.raises(ConfigError) as err:
        load_settings(p, {})
    assert "inference.providers[local].apis" in str(err.value) and "chat" in str(err.value)
