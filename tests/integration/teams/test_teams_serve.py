"""Virtual keys end to end: `sluicegate keys` + `sluicegate serve --workers 2` + the embedded mock, real sockets."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sluicegate.config.inference import MockSettings
from sluicegate.dev.mock_provider import MockProvider
from tests.support.servers import ProxyProcess

CONFIG = """
[server]
host = "127.0.0.1"
port = {port}

[inference]
path_prefix = "/llm"

[inference.state]
data_dir = "DATA"

[inference.teams]
budget_status = 402

[inference.prices.fast]
input = 1000.0
output = 2000.0

[[inference.providers]]
name = "mock"
kind = "mock"
base_url = "MOCK"

[[inference.models]]
name = "fast"
targets = [{ provider = "mock", model = "mock-1" }]

[[inference.models]]
name = "other"
targets = [{ provider = "mock", model = "mock-2" }]
"""


ADMIN_TOKEN = "admin-token-0123456789abcdef"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sluicegate", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ProxyProcess, dict[str, str], Path]]:
    tmp = tmp_path_factory.mktemp("teams")
    cfg = tmp / "keys.toml"
    mock = MockProvider(MockSettings(first_delay_ms=1, between_delay_ms=1, chunks=4)).start_in_thread()
    text = CONFIG.replace("DATA", str(tmp / "data")).replace("MOCK", mock.url)
    cfg.write_text(text.replace("{port}", "8080"))
    keys = {}
    for name, extra in (("burst", ["--rpm", "60"]), ("small", ["--models", "fast", "--max-streams", "1"]),
                        ("poor", ["--budget", "0.05", "--period", "day"]), ("open", []),
                        ("wide", ["--rpm", "400", "--tpm", "10000000", "--max-streams", "1000"])):
        out = cli("keys", "create", "--config", str(cfg), "--name", name, *extra)
        assert out.returncode == 0, out.stderr
        keys[name] = out.stdout.strip().splitlines()[-1]
        assert keys[name].startswith("sk-sg-") and len(keys[name]) == 49
    proxy = ProxyProcess(tmp, text, workers=2, env={"SLUICEGATE_ADMIN_TOKEN": ADMIN_TOKEN}).start()
    try:
        yield proxy, keys, cfg
    finally:
        proxy.stop()
        mock.stop_thread()


async def _post(session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: dict[str, Any]) \
        -> tuple[int, dict[str, str], bytes]:
    async with session.post(url, json=body, headers=headers) as r:
        return r.status, dict(r.headers), await r.read()


def _chat(model: str = "fast", stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream, **extra}


def test_burst_on_two_workers_admits_exactly_the_rpm(served: tuple[ProxyProcess, dict[str, str], Path]) -> None:
    proxy, keys, _ = served

    async def burst() -> list[tuple[int, dict[str, str], bytes]]:
        conn = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(connector=conn) as s:
            h = {"authorization": f"Bearer {keys['burst']}"}
            return await asyncio.gather(*[_post(s, f"{proxy.url}/llm/v1/chat/completions", h, _chat())
                                          for _ in range(200)])

    results = asyncio.run(burst())
    statuses = [r[0] for r in results]
    assert statuses.count(200) == 60 and statuses.count(429) == 140, statuses
    refused = next(r for r in results if r[0] == 429)
    assert 1 <= int(refused[1]["Retry-After"]) <= 60
    err = json.loads(refused[2])["error"]
    assert err["type"] == "rate_limit_error" and err["code"] == "rate_limit_exceeded"


def test_waves_on_two_workers_with_leases_admit_exactly_the_rpm(
        served: tuple[ProxyProcess, dict[str, str], Path]) -> None:
    """A 400 RPM key is far from its limit at first: the workers admit from leases (up to 1/8 of what is
    left each), then exactly near the limit. Waves with pauses longer than a lease's life leave leases
    idle on a worker that gets no more requests; they are returned, so the total is exactly 400."""
    proxy, keys, cfg = served

    async def waves() -> list[int]:
        conn = aiohttp.TCPConnector(limit=100)
        statuses: list[int] = []
        async with aiohttp.ClientSession(connector=conn) as s:
            h = {"authorization": f"Bearer {keys['wide']}"}
            for n in (150, 150, 100, 120, 80):
                results = await asyncio.gather(*[_post(s, f"{proxy.url}/llm/v1/chat/completions", h, _chat())
                                                 for _ in range(n)])
                statuses += [r[0] for r in results]
                await asyncio.sleep(0.4)  # > lease_ttl: whatever a worker leased and did not use is returned
        return statuses

    statuses = asyncio.run(waves())
    assert statuses.count(200) == 400 and statuses.count(429) == 200, (statuses.count(200), statuses.count(429))
    db = sqlite3.connect(cfg.parent / "data" / "limits.db")
    assert 400 in [n for (n,) in db.execute("SELECT n FROM win")]  # the shared window: 400, not 400 per worker
    leased = db.execute("SELECT count(*), total(n) FROM hits WHERE req LIKE 'L:%' AND n > 1").fetchone()
    assert leased[0] >= 2 and leased[1] >= 100  # most admissions came from leases, not transactions


def test_unknown_key_gets_401_in_each_protocol_shape(served: tuple[ProxyProcess, dict[str, str], Path]) -> None:
    proxy = served[0]

    async def run() -> list[tuple[int, dict[str, str], bytes]]:
        async with aiohttp.ClientSession() as s:
            bad = "sk-sg-" + "A" * 43
            return [
                await _post(s, f"{proxy.url}/llm/v1/chat/completions", {"authorization": f"Bearer {bad}"}, _chat()),
                await _post(s, f"{proxy.url}/llm/v1/messages", {"x-api-key": bad, "anthropic-version": "2023-06-01"},
                            {"model": "fast", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
                await _post(s, f"{proxy.url}/llm/v1/chat/completions", {}, _chat()),
            ]

    openai, anthropic, keyless = asyncio.run(run())
    assert openai[0] == 401 and json.loads(openai[2])["error"]["type"] == "authentication_error"
    assert anthropic[0] == 401 and json.loads(anthropic[2]) == {
        "type": "error", "error": {"type": "authentication_error", "message": "invalid or disabled API key"}}
    assert keyless[0] == 401  # keys exist, require_keys unset: keys are required


def test_model_allow_list_and_concurrent_streams(served: tuple[ProxyProcess, dict[str, str], Path]) -> None:
    proxy, keys, _ = served

    async def run() -> tuple[int, list[int]]:
        async with aiohttp.ClientSession() as s:
            h = {"authorization": f"Bearer {keys['small']}", "x-mock-fault": "between_ms=150"}
            other = await _post(s, f"{proxy.url}/llm/v1/chat/completions", h, _chat("other"))
            both = await asyncio.gather(
                _post(s, f"{proxy.url}/llm/v1/chat/completions", h, _chat(stream=True)),
                _post(s, f"{proxy.url}/llm/v1/chat/completions", h, _chat(stream=True)))
            return other[0], sorted(r[0] for r in both)

    other, both = asyncio.run(run())
    assert other == 403
    assert both == [200, 429]  # one stream at a time for this key


def test_budget_is_enforced_and_usage_is_reported(served: tuple[ProxyProcess, dict[str, str], Path]) -> None:
    proxy, keys, cfg = served

    async def run() -> list[int]:
        async with aiohttp.ClientSession() as s:
            h = {"authorization": f"Bearer {keys['poor']}"}
            out = []
            for _ in range(6):  # each costs ~(usage in x 1000 + out x 2000) / 1e6 USD: a few cents
                out.append((await _post(s, f"{proxy.url}/llm/v1/chat/completions", h,
                                        _chat(stream=True, max_tokens=5, stream_options={"include_usage": True})))[0])
            return out

    statuses = asyncio.run(run())
    assert statuses[0] == 200 and 402 in statuses and statuses[statuses.index(402):] == [402] * (
        len(statuses) - statuses.index(402))
    deadline = time.monotonic() + 10
    while True:
        out = cli("usage", "--config", str(cfg), "--by", "key", "--json")
        assert out.returncode == 0, out.stderr
        rows = {r["key"]: r for r in json.loads(out.stdout)}
        if ("poor" in rows and rows["poor"]["requests"] == statuses.count(200)) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    poor = rows["poor"]
    assert poor["requests"] == statuses.count(200) and poor["output_tokens"] > 0
    assert poor["cost"] == pytest.approx((poor["input_tokens"] * 1000 + poor["output_tokens"] * 2000) / 1e6)
    assert poor["cost"] <= 0.05 + 0.05  # at most one request's reservation over
    assert rows["burst"]["requests"] == 60
    text = cli("usage", "--config", str(cfg), "--by", "model", "--since", "1d")
    assert text.returncode == 0 and "fast" in text.stdout


def test_disable_takes_effect_and_keys_list_never_shows_secrets(
        served: tuple[ProxyProcess, dict[str, str], Path]) -> None:
    proxy, keys, cfg = served
    listing = cli("keys", "list", "--config", str(cfg))
    assert listing.returncode == 0 and "open" in listing.stdout
    assert all(secret not in listing.stdout for secret in keys.values())
    assert cli("keys", "disable", "--config", str(cfg), "open").returncode == 0

    async def status() -> int:
        async with aiohttp.ClientSession() as s:
            return (await _post(s, f"{proxy.url}/llm/v1/chat/completions",
                                {"authorization": f"Bearer {keys['open']}"}, _chat()))[0]

    deadline = time.monotonic() + 10
    while asyncio.run(status()) != 401:  # within key_cache_ttl (2 s) on every worker
        assert time.monotonic() < deadline
        time.sleep(0.2)
    bad = cli("keys", "show", "--config", str(cfg), "nope")
    assert bad.returncode == 2 and "no key" in bad.stderr


def _admin(proxy: ProxyProcess, method: str, path: str, body: Any = None, token: str = ADMIN_TOKEN) \
        -> tuple[int, Any]:
    req = urllib.request.Request(f"{proxy.admin_url}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_admin_api_manages_keys_with_a_token(served: tuple[ProxyProcess, dict[str, str], Path]) -> None:
    proxy = served[0]
    assert _admin(proxy, "GET", "/v1/keys", token="")[0] == 401
    assert _admin(proxy, "GET", "/v1/keys", token="wrong-token-0123456789")[0] == 401
    status, made = _admin(proxy, "POST", "/v1/keys", {"name": "via-api", "rpm": 5, "models": ["fast"]})
    assert status == 201 and made["key"].startswith("sk-sg-") and made["rpm"] == 5
    assert _admin(proxy, "POST", "/v1/keys", {"name": "x", "rpm": "many"})[0] == 400
    assert _admin(proxy, "POST", "/v1/keys", {"name": "via-api"})[0] == 400  # duplicate name
    status, listed = _admin(proxy, "GET", "/v1/keys")
    assert status == 200 and "via-api" in [k["name"] for k in listed]
    assert all("key" not in k for k in listed)

    async def call(key: str) -> int:
        async with aiohttp.ClientSession() as s:
            return (await _post(s, f"{proxy.url}/llm/v1/chat/completions", {"x-api-key": key}, _chat()))[0]

    assert asyncio.run(call(made["key"])) == 200
    assert _admin(proxy, "GET", f"/v1/keys/{made['id']}")[1]["name"] == "via-api"
    status, rotated = _admin(proxy, "POST", f"/v1/keys/{made['id']}/rotate")
    assert status == 200 and rotated["key"] != made["key"]
    status, usage = _admin(proxy, "GET", "/v1/usage?by=model&since=1d")
    assert status == 200 and any(r["model"] == "fast" for r in usage)
    assert _admin(proxy, "DELETE", "/v1/keys/via-api")[0] == 200
    assert _admin(proxy, "GET", "/v1/keys/via-api")[0] == 404
    with urllib.request.urlopen(f"{proxy.admin_url}/livez", timeout=5) as r:  # the health routes are unchanged
        assert r.status == 200
