"""Protocol detection and error shapes, candidate ordering and breakers, the [inference] config model."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from pydantic import ValidationError

from sluicegate.config.inference import InferenceSettings
from sluicegate.config.loader import ConfigError, load_settings
from sluicegate.inference.protocol import Api, Family, detect, error_body, stream_error_event
from sluicegate.inference.routing import Router


@pytest.mark.parametrize(("method", "path", "api"), [
    ("POST", "/v1/chat/completions", Api.CHAT), ("POST", "/v1/completions", Api.COMPLETIONS),
    ("POST", "/v1/responses", Api.RESPONSES), ("POST", "/v1/embeddings", Api.EMBEDDINGS),
    ("GET", "/v1/models", Api.MODELS), ("GET", "/v1/models/a/b", Api.MODEL),
    ("POST", "/v1/messages", Api.MESSAGES), ("POST", "/v1/messages/count_tokens", Api.COUNT_TOKENS),
    ("POST", "//v1//chat/completions/", Api.CHAT), ("GET", "/v1/chat/completions", None),
    ("POST", "/v1/../v1/messages", None), ("POST", "/v1/messages/batches", None), ("POST", "/v1/x y", None),
])
def test_detect(method: str, path: str, api: Api | None) -> None:
    assert detect(method, path, None, {}).api is api


def test_encoded_slash_refused_and_family_guess() -> None:
    assert detect("POST", "/v1/chat/completions", b"/v1/chat%2Fcompletions", {}).api is None
    assert detect("GET", "/nope", None, {b"anthropic-version": b"x"}).family is Family.ANTHROPIC
    assert detect("GET", "/nope", None, {}).family is Family.OPENAI


def test_error_shapes() -> None:
    a = json.loads(error_body(Family.ANTHROPIC, 529, "busy"))
    assert a == {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    o = json.loads(error_body(Family.OPENAI, 429, "slow down", "rate"))
    assert o["error"]["type"] == "rate_limit_error" and o["error"]["code"] == "rate"


def test_stream_error_events_cannot_be_forged() -> None:
    evil = "x\n\ndata: [DONE]\n\nevent: message_stop"
    for api in (Api.CHAT, Api.MESSAGES, Api.RESPONSES):
        ev = stream_error_event(api, evil)
        assert ev.endswith(b"\n\n") and ev.count(b"\n\n") == 1
    assert stream_error_event(Api.MESSAGES, "m").startswith(b"event: error\ndata: {\"type\":\"error\"")
    assert stream_error_event(Api.CHAT, "m").startswith(b'data: {"error":')


def _settings(strategy: str = "ordered", **breaker: float) -> InferenceSettings:
    return InferenceSettings.model_validate({
        "path_prefix": "/llm",
        "providers": [{"name": n, "kind": "mock"} for n in ("a", "b", "c")],
        "models": [{"name": "m", "strategy": strategy, "targets": [
            {"provider": "a", "model": "x", "weight": 1}, {"provider": "b", "model": "x", "weight": 3},
            {"provider": "c", "model": "x", "weight": 0.001}]}],
        "breaker": breaker or {"failure_threshold": 2, "cooldown": 5},
    })


def test_ordered_breaker_opens_and_half_opens() -> None:
    now = [100.0]
    r = Router(_settings(), clock=lambda: now[0])
    cands = r.candidates("m")
    assert cands is not None and [t.target.provider for t in cands] == ["a", "b", "c"]
    a = cands[0]
    assert not r.failure(a)
    assert r.failure(a)  # threshold 2: opened
    assert [t.target.provider for t in r.candidates("m") or []] == ["b", "c", "a"]
    now[0] += 6  # cooldown over: a is tried again (half-open)
    assert next(t.target.provider for t in r.candidates("m") or []) == "a"
    r.begin(a)
    assert [t.target.provider for t in r.candidates("m") or []] == ["b", "c", "a"]  # one trial at a time
    r.end(a)
    r.success(a)
    assert next(t.target.provider for t in r.candidates("m") or []) == "a"
    assert r.candidates("unknown") is None


def test_weighted_and_least_inflight() -> None:
    r = Router(_settings("weighted"), rng=random.Random(1))
    firsts = [(r.candidates("m") or [])[0].target.provider for _ in range(2000)]
    assert firsts.count("b") > firsts.count("a") * 2 and firsts.count("c") < 20
    r = Router(_settings("least-inflight"))
    a, b, _ = r.candidates("m") or []
    r.begin(a)
    r.begin(a)
    r.begin(b)
    assert [t.target.provider for t in r.candidates("m") or []] == ["c", "b", "a"]


def test_config_defaults_disabled_and_validation(tmp_path: Path) -> None:
    assert not InferenceSettings().enabled
    bad = [
        {"providers": [{"name": "p", "kind": "openai", "api_key": "sk-..."}]},
        {"providers": [{"name": "p", "kind": "openai", "api_key": "<your key>"}]},
        {"providers": [{"name": "p", "kind": "openai"}]},  # no key source
        {"providers": [{"name": "p", "kind": "openai-compatible", "auth": "none"}]},  # no base_url
        {"providers": [{"name": "p", "kind": "mock", "colour": "red"}]},  # unknown key
        {"providers": [{"name": "p", "kind": "mock"}, {"name": "p", "kind": "mock"}]},
        {"path_prefix": "/l", "providers": [{"name": "p", "kind": "mock"}],
         "models": [{"name": "m", "targets": [{"provider": "q", "model": "x"}]}]},
        {"providers": [{"name": "p", "kind": "mock", "headers": {"authorization": "x"}}]},
        {"providers": [{"name": "p", "kind": "mock", "timeouts": {"idle": 0}}]},
        {"path_prefix": "llm"},
    ]
    for data in bad:
        with pytest.raises(ValidationError):
            InferenceSettings.model_validate(data)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[inference]\npath_prefix = "/llm"\n\n[[inference.providers]]\nname = "p"\nkind = "openai"\n'
                   'api_key = "changeme"\n')
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg, {})
    assert "changeme" not in str(exc.value) and "inference.providers[p].api_key" in str(exc.value)
    cfg.write_text('[inference]\npath_prefix = "/llm"\n[[inference.providers]]\nname = "demo"\nkind = "mock"\n'
                   '[[inference.models]]\nname = "demo"\ntargets = [{provider = "demo", model = "mock-1"}]\n')
    s = load_settings(cfg, {"SLUICEGATE__INFERENCE__MAX_REQUEST_BODY_BYTES": "2048"})
    assert s.inference.enabled and s.inference.max_request_body_bytes == 2048
    assert s.inference.providers[0].auth_style == "none"
