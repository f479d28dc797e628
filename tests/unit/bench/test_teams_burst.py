"""The burst comparison's pure parts: counting the answers, the verdict, the table, LiteLLM's config text."""

from __future__ import annotations

from pathlib import Path

from sluicegate.bench.suites.teams import gateway_config
from sluicegate.bench.suites.teams_burst import LIMIT, busy_processes, litellm_yaml, render, tally
from sluicegate.config.loader import load_settings_text


def test_tally_exact_burst() -> None:
    t = tally([200] * 60 + [429] * 140)
    assert t == {"sent": 200, "limit": 60, "admitted": 60, "refused_429": 140, "other_statuses": {},
                 "over_admitted": 0, "exact": True}


def test_tally_over_admission_and_other_codes() -> None:
    t = tally([200] * 120 + [429] * 70 + [500] * 7 + [0] * 3)
    assert t["admitted"] == 120 and t["refused_429"] == 70
    assert t["over_admitted"] == 60 and not t["exact"]
    assert t["other_statuses"] == {"0": 3, "500": 7}


def test_tally_exact_count_with_errors_is_not_exact() -> None:
    t = tally([200] * 60 + [429] * 139 + [502])
    assert t["over_admitted"] == 0 and t["other_statuses"] == {"502": 1} and not t["exact"]


def test_tally_under_admission_and_small_bursts() -> None:
    assert not tally([200] * 59 + [429] * 141)["exact"]
    assert tally([200] * 10, limit=60)["exact"]  # fewer requests than the limit: all admitted is exact


def test_render_lists_each_setup_with_its_verdict() -> None:
    rows = [{"setup": "sluicegate workers=2", **tally([200] * 60 + [429] * 140), "admitted_per_entry_point": [60],
             "busy_processes": 3},
            {"setup": "litellm workers=2", **tally([200] * 118 + [429] * 82), "straddled_minute": False},
            {"setup": "litellm 2 instances + redis", "skipped": "no redis-server"}]
    out = render(rows).splitlines()
    assert out[0].split()[:2] == ["set-up", "(limit"]
    assert out[2].split()[-7:] == ["200", "60", "140", "-", "60", "3", "exact"]
    assert out[3].endswith("over-admits 58") and "118" in out[3].split()
    assert "skipped: no redis-server" in out[4]


def test_litellm_yaml_puts_the_limit_on_the_deployment_and_redis_in_router_settings() -> None:
    text = litellm_yaml(4321)
    lines = [ln.strip() for ln in text.splitlines()]
    dep = lines[lines.index("- model_name: bench"):lines.index("router_settings:")]
    assert f"rpm: {LIMIT}" in dep and "api_base: http://127.0.0.1:4321/v1" in dep
    warm = lines[lines.index("- model_name: warm"):lines.index("router_settings:")]
    assert dep.index("- model_name: warm") > dep.index(f"rpm: {LIMIT}")  # the limit is bench's alone
    assert not any(ln.startswith("rpm") for ln in warm)
    router = lines[lines.index("router_settings:"):lines.index("litellm_settings:")]
    assert "num_retries: 0" in router and "optional_pre_call_checks: [enforce_model_rate_limits]" in router
    assert not any(ln.startswith("redis_") for ln in router)
    shared = [ln.strip() for ln in litellm_yaml(4321, redis_port=6390).splitlines()]
    router = shared[shared.index("router_settings:"):shared.index("litellm_settings:")]
    assert "redis_host: 127.0.0.1" in router and "redis_port: 6390" in router
    assert "\t" not in text and all(len(ln) - len(ln.lstrip()) in (0, 2, 4, 6) for ln in text.splitlines())


def test_busy_processes_counts_only_those_that_worked() -> None:
    before = {10: 100, 11: 50, 12: 7}
    after = {10: 180, 11: 51, 12: 9, 13: 4}  # 13 started during the burst
    assert busy_processes(before, after) == 3
    assert busy_processes(before, after, min_ticks=50) == 1


def test_gateway_config_is_one_template_for_both_teams_benches(tmp_path: Path) -> None:
    """teams.py and teams_burst.py start `serve` from the same config text: it loads through the real loader,
    prices and the forwarded fault header only when priced, the state lines inside [inference.state]."""
    state = 'redis_url = "redis://127.0.0.1:6390/0"\nlease_max_requests = 0'
    priced = load_settings_text(gateway_config(8001, 8002, tmp_path / "d", 8003, state), "teams.toml")
    burst = load_settings_text(gateway_config(8001, 8002, tmp_path / "d", 8003, state, priced=False), "burst.toml")
    for s in (priced, burst):
        assert s.server.port == 8001 and s.admin.listen == "127.0.0.1:8002"
        assert s.inference.path_prefix == "/llm" and s.inference.state.data_dir == str(tmp_path / "d")
        assert s.inference.state.redis_url == "redis://127.0.0.1:6390/0"
        assert s.inference.state.lease_max_requests == 0
        assert [p.base_url for p in s.inference.providers] == ["http://127.0.0.1:8003/v1"]
        assert [(m.name, [t.model for t in m.targets]) for m in s.inference.models] == [("bench", ["mock-1"])]
    assert priced.inference.prices["bench"].input == 1.0 and priced.inference.prices["bench"].output == 2.0
    assert priced.inference.providers[0].forward_headers == ["x-mock-fault"]
    assert not burst.inference.prices and not burst.inference.providers[0].forward_headers
