"""An idle worker imports only what its config enables (docs/operations.md, "Footprint").

Each case runs ``server.worker.main`` in a fresh interpreter on a real listening socket, up to the moment it
would start serving (``uvloop.run`` is replaced by a stub that prints ``sys.modules`` and returns): the worker's
own lean imports, config load, app build and serving-core build all run as in production. A config without
``[first_party]``/``[identity]``/inference must not import those faces, prometheus_client's exposition, or
``importlib.metadata`` (pydantic's plugin discovery); the same worker with them on does import the faces
(the control: the check sees what a worker imports). Also: prometheus_client's deferred ``__init__`` still
gives every name on first use, and metrics made before it render unchanged.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

DRIVER = textwrap.dedent("""
    import json, sys, uvloop
    def stop(coro):
        coro.close()
        print("MODULES " + json.dumps(sorted(sys.modules)))
        return 0
    uvloop.run = stop
    from sluicegate.server import worker
    sys.exit(worker.main(sys.argv[1:]))
""")

BASE = """
[server]
access_log = "off"

[publisher]
origin_url = "http://127.0.0.1:9"
public_hosts = ["*"]

[[publisher.routes]]
name = "img"
prefix = "/img/"
kind = "asset"
origin_url = "http://127.0.0.1:9"
image_optimizer = { enabled = true, profile_set = "bench" }

[image_optimizer.profile_sets.bench]
default_profile = "w800"
widths = [800]

[image_optimizer.profile_sets.bench.profiles.w800]
width = 800
format = "webp"
"""

FIRST_PARTY = """
[first_party]
enabled = true
allowed_domains = ["cdn.fp.test"]
rewrite_domains = ["cdn.fp.test"]

[identity]
enabled = true
"""

# modules a worker of BASE must not hold: disabled faces, the metrics exposition, plugin discovery, the HTTP/2
# library (imported by the first h2 connection)
ABSENT_PREFIXES = ("sluicegate.firstparty", "sluicegate.identity", "sluicegate.inference", "sluicegate.teams",
                   "uvicorn")
ABSENT = ("prometheus_client.exposition", "http.server", "wsgiref", "urllib.request", "email", "gzip",
          "importlib.metadata", "zipfile", "h2", "hpack")


def _worker_modules(tmp_path: Path, config: str) -> set[str]:
    conf = tmp_path / "worker.toml"
    conf.write_text(config)
    mp = tmp_path / "mp"
    mp.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(mp), "SLUICEGATE_FIRST_PARTY_KEYS": os.urandom(24).hex(),
           "SLUICEGATE_IDENTITY_SECRET": os.urandom(24).hex()}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        proc = subprocess.run([sys.executable, "-c", DRIVER, "--fd", str(sock.fileno()), "--config", str(conf)],
                              pass_fds=(sock.fileno(),), env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("MODULES "))
    return set(json.loads(line.removeprefix("MODULES ")))


def test_a_worker_imports_no_disabled_face_and_no_exposition(tmp_path: Path) -> None:
    mods = _worker_modules(tmp_path, BASE)
    assert "sluicegate.publisher.app" in mods and "sluicegate.images.serve" in mods  # it did build the app
    assert "prometheus_client.metrics" in mods and "pydantic" in mods
    held = sorted(m for m in mods if m.startswith(ABSENT_PREFIXES) or m in ABSENT)
    assert held == []


def test_a_worker_with_first_party_imports_it(tmp_path: Path) -> None:
    mods = _worker_modules(tmp_path, BASE + FIRST_PARTY)
    assert {"sluicegate.firstparty.page", "sluicegate.firstparty.endpoints", "sluicegate.identity.edge"} <= mods


PROM = textwrap.dedent("""
    import sys
    from sluicegate.observability import promlazy
    assert promlazy.defer_exposition()
    assert not promlazy.defer_exposition()  # once
    from prometheus_client import CollectorRegistry, Counter, values
    assert "prometheus_client.exposition" not in sys.modules and promlazy.deferred()
    reg = CollectorRegistry()
    Counter("lazy_total", "made before the exposition", registry=reg).inc(3)
    import prometheus_client
    text = prometheus_client.generate_latest(reg).decode()  # runs the real __init__ now
    assert not promlazy.deferred() and "prometheus_client.exposition" in sys.modules
    assert prometheus_client.Counter is Counter and prometheus_client.values is values
    assert "lazy_total 3.0" in text, text
    try:
        prometheus_client.no_such_name
    except AttributeError:
        print("OK")
""")


def test_prometheus_client_deferred_init_still_gives_every_name() -> None:
    proc = subprocess.run([sys.executable, "-c", PROM], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "OK"


@pytest.mark.parametrize("already", [False, True])
def test_pydantic_plugin_discovery_skipped_only_before_pydantic(already: bool) -> None:
    code = textwrap.dedent(f"""
        import sys
        {"import pydantic.main" if already else ""}
        from sluicegate.server import lean
        print(lean.skip_pydantic_plugins())
        from pydantic import BaseModel
        class M(BaseModel):
            a: int = 1
        assert M(a=2).a == 2
        print("importlib.metadata" in sys.modules)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == (["False", "True"] if already else ["True", "False"])


ONE_PROCESS_DRIVER = textwrap.dedent("""
    import json, sys, uvloop
    def stop(coro):
        coro.close()
        print("MODULES " + json.dumps(sorted(sys.modules)))
        return 0
    uvloop.run = stop
    from sluicegate.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_one_process_imports_no_exposition_until_scraped(tmp_path: Path) -> None:
    """``sluicegate serve`` with ``supervisor = false``, up to serving: the app built, the admin's metrics
    registry made, but neither the exposition nor urllib.request (the CLI's own) loaded; the first scrape
    loads it (tests/integration/ops/test_one_process.py scrapes /metrics)."""
    conf = tmp_path / "one.toml"
    conf.write_text(BASE.replace('access_log = "off"', 'access_log = "off"\nsupervisor = false'))
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    proc = subprocess.run([sys.executable, "-c", ONE_PROCESS_DRIVER, "serve", "--config", str(conf), "--port", "0"],
                          env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("MODULES "))
    mods = set(json.loads(line.removeprefix("MODULES ")))
    assert "sluicegate.server.single" in mods and "sluicegate.images.serve" in mods  # it did build the app
    assert "prometheus_client.registry" in mods and "prometheus_client.metrics" in mods
    held = sorted(m for m in mods if m in ("prometheus_client.exposition", "http.server", "wsgiref",
                                           "urllib.request", "email"))
    assert held == []
