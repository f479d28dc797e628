"""Two sluicegate instances sharing one real Redis (counters) and one real PostgreSQL (keys + ledger)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sluicegate.config.inference import MockSettings
from sluicegate.dev.mock_provider import MockProvider
from tests.integration.teams.stateservers import PostgresServer, RedisServer
from tests.support.servers import ProxyProcess

PEPPER = "shared-pepper-0123456789abcdef"

CONFIG = """
[server]
host = "127.0.0.1"
port = {port}

[inference]
path_prefix = "/llm"

[inference.state]
data_dir = "DATA"
redis_url = "REDIS"
database_url = "PG"
counter_failure = "POLICY"
ledger_flush_interval = "50ms"

[[inference.providers]]
name = "mock"
kind = "mock"
base_url = "MOCK"

[[inference.models]]
name = "fast"
targets = [{ provider = "mock", model = "mock-1" }]
"""


class Cluster:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.mock = MockProvider(MockSettings(first_delay_ms=1, between_delay_ms=1, chunks=4)).start_in_thread()
        self.redis = RedisServer().start()
        self.pg = PostgresServer().start()
        self.env = {"SLUICEGATE_KEY_PEPPER": PEPPER}
        self.cfg: dict[str, Path] = {}
        self.proxies: list[ProxyProcess] = []
        for i, policy in enumerate(("fail_closed", "fail_open")):
            d = tmp / f"node{i}"
            d.mkdir()
            text = (CONFIG.replace("DATA", str(d / "data")).replace("REDIS", self.redis.url)
                    .replace("PG", self.pg.url).replace("POLICY", policy).replace("MOCK", self.mock.url))
            self.cfg[policy] = d / "cli.toml"
            self.cfg[policy].write_text(text.replace("{port}", "8080"))
            self.proxies.append(ProxyProcess(d, text, workers=1, env=self.env))

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        import os

        return subprocess.run([sys.executable, "-m", "sluicegate", *args], capture_output=True, text=True,
                              timeout=60, env={**os.environ, **self.env})

    def close(self) -> None:
        for p in self.proxies:
            p.stop()
        self.redis.cleanup()
        self.pg.cleanup()
        self.mock.stop_thread()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("scaleout"))
    try:
        yield c
    finally:
        c.close()


def _chat() -> dict[str, Any]:
    return {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


async def _statuses(urls: list[str], key: str, n: int) -> list[int]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=n)) as s:
        async def one(i: int) -> int:
            async with s.post(f"{urls[i % len(urls)]}/llm/v1/chat/completions", json=_chat(),
                              headers={"authorization": f"Bearer {key}"}) as r:
                await r.read()
                return r.status

        return list(await asyncio.gather(*[one(i) for i in range(n)]))


def test_two_instances_enforce_one_limit_and_share_the_ledger(cluster: Cluster) -> None:
    made = cluster.cli("keys", "create", "--config", str(cluster.cfg["fail_closed"]), "--name", "team-both",
                       "--rpm", "60")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    for p in cluster.proxies:
        p.start()
    statuses = asyncio.run(_statuses([p.url for p in cluster.proxies], key, 200))
    assert statuses.count(200) == 60 and statuses.count(429) == 140
    # the key made through one instance's config is listed through the other's: one PostgreSQL
    listed = cluster.cli("keys", "list", "--config", str(cluster.cfg["fail_open"]), "--json")
    assert listed.returncode == 0, listed.stderr
    assert [k["name"] for k in json.loads(listed.stdout)] == ["team-both"]
    deadline = time.monotonic() + 15
    while True:
        rows = usage_rows(cluster)
        if (rows and rows[0]["requests"] == 60) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert rows[0]["key"] == "team-both" and rows[0]["requests"] == 60 and rows[0]["output_tokens"] > 0


def usage_rows(cluster: Cluster) -> list[dict[str, Any]]:
    out = cluster.cli("usage", "--config", str(cluster.cfg["fail_open"]), "--by", "key", "--json")
    assert out.returncode == 0, out.stderr
    rows: list[dict[str, Any]] = json.loads(out.stdout)
    return rows


def _metric(proxy: ProxyProcess, name: str) -> float:
    with urllib.request.urlopen(f"{proxy.admin_url}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_postgres_down_spools_the_ledger_and_replays_it(cluster: Cluster) -> None:
    made = cluster.cli("keys", "create", "--config", str(cluster.cfg["fail_open"]), "--name", "spooled")
    key = made.stdout.strip().splitlines()[-1]
    urls = [p.url for p in cluster.proxies]
    assert asyncio.run(_statuses(urls, key, 2)) == [200, 200]  # both instances have the key cached now
    cluster.pg.stop()
    try:
        assert asyncio.run(_statuses(urls, key, 10)) == [200] * 10  # served from the key cache
        deadline = time.monotonic() + 10
        while _metric(cluster.proxies[0], "sluicegate_teams_ledger_spooled_total") < 1:
            assert time.monotonic() < deadline, "no ledger row was spooled"
            time.sleep(0.1)
        assert list((cluster.tmp / "node0" / "data").glob("ledger-spool-*.jsonl"))
    finally:
        cluster.pg.restart()
    deadline = time.monotonic() + 20
    while True:
        rows = {r["key"]: r for r in usage_rows(cluster)}
        if rows.get("spooled", {}).get("requests") == 12 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert rows["spooled"]["requests"] == 12  # nothing lost, nothing counted twice
    assert not list((cluster.tmp / "node0" / "data").glob("ledger-spool-*.jsonl"))


def test_redis_down_applies_each_instance_policy(cluster: Cluster) -> None:
    made = cluster.cli("keys", "create", "--config", str(cluster.cfg["fail_open"]), "--name", "limited",
                       "--rpm", "1000")
    key = made.stdout.strip().splitlines()[-1]
    closed, open_ = cluster.proxies
    assert asyncio.run(_statuses([closed.url, open_.url], key, 2)) == [200, 200]
    cluster.redis.stop()
    assert asyncio.run(_statuses([closed.url], key, 3)) == [503] * 3
    assert asyncio.run(_statuses([open_.url], key, 3)) == [200] * 3
    assert _metric(closed, 'sluicegate_teams_counter_store_errors_total{policy="fail_closed"}') >= 3
    assert _metric(open_, 'sluicegate_teams_counter_store_errors_total{policy="fail_open"}') >= 3
    assert "limit store unavailable" in closed.log() and "refusing" in closed.log()
    assert "admitting" in open_.log()
