"""The supervisor holds no app: the build check runs in a short-lived child (``server.configcheck``), with the
same answers as before (serve: one line, exit 2; reload: refused with the error, the old generation serving),
and the processes that live on import only what they use (docs/operations.md, supervisor footprint)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import Origin
from tests.integration.ops.helpers import get, start, wait_for
from tests.integration.ops.test_cli import one_clear_line
from tests.support.servers import free_port

S3_ROUTE = """
[[publisher.routes]]
name = "media"
prefix = "/media/"
kind = "asset"
origin_url = "{origin}"
s3 = {{ region = "eu-west-1", access_key_id_env = "T_FOOT_KEY_ID", secret_access_key_env = "T_FOOT_SECRET" }}
"""
UNSET = "publisher.routes[media].s3: credentials: environment variable T_FOOT_KEY_ID, T_FOOT_SECRET is not set"


def _env_without_keys() -> dict[str, str]:
    drop = ("T_FOOT_KEY_ID", "T_FOOT_SECRET", "SLUICEGATE_ADMIN_TOKEN")
    return {k: v for k, v in os.environ.items() if k not in drop}


def test_serve_refuses_an_unbuildable_config_in_one_line(tmp_path: Path) -> None:
    """Valid TOML and model, but the app cannot be built (a secret unset): the child's check answers."""
    cfg = tmp_path / "s3.toml"
    cfg.write_text(f'[server]\nport = {free_port()}\n[admin]\nlisten = "127.0.0.1:{free_port()}"\n'
                   f'[publisher]\norigin_url = "http://127.0.0.1:9"\npublic_hosts = ["*"]\n'
                   + S3_ROUTE.format(origin="http://127.0.0.1:9"))
    done = subprocess.run([sys.executable, "-m", "sluicegate", "serve", "--config", str(cfg)], capture_output=True,
                          text=True, timeout=60, env=_env_without_keys())
    assert one_clear_line(done) == f"{cfg}: {UNSET}"
    check = subprocess.run([sys.executable, "-m", "sluicegate", "check-config", str(cfg)], capture_output=True,
                           text=True, timeout=60, env=_env_without_keys())
    assert one_clear_line(check) == f"{cfg}: {UNSET}"  # the in-process check says the same


def test_reload_refuses_an_unbuildable_config_and_keeps_serving(tmp_path: Path, origin: Origin) -> None:
    p = start(tmp_path, origin.url, env=_env_without_keys())
    try:
        assert get(p.url + "/page")[0] == 200
        # the teams key API on the admin listener, off without a token (answered without the config model)
        status, _h, body = get(p.admin_url + "/v1/keys")
        assert status == 404 and b"admin API off: set the environment variable SLUICEGATE_ADMIN_TOKEN" in body
        good = p.config_path.read_text()
        p.config_path.write_text(good + S3_ROUTE.format(origin=origin.url))
        assert p.proc is not None
        os.kill(p.proc.pid, signal.SIGHUP)
        wait_for(lambda: "reload refused" in p.log(), timeout=60, what="the refusal")
        assert f"{p.config_path}: {UNSET}" in p.log()
        status = json.loads(get(p.admin_url + "/status")[2])
        assert status["config"]["generation"] == 1
        assert get(p.url + "/page")[0] == 200
        # a buildable file afterwards is taken as usual
        p.config_path.write_text(good.replace('idle = "2s"', 'idle = "3s"'))
        os.kill(p.proc.pid, signal.SIGHUP)
        wait_for(lambda: json.loads(get(p.admin_url + "/status")[2])["config"]["generation"] == 2, timeout=60,
                 what="generation 2")
        assert get(p.url + "/page")[0] == 200
    finally:
        p.stop()


SUPERVISOR_IMPORTS = """
import sys
from sluicegate.cli import _check_for_serving, build_parser
build_parser(tools=False)
loaded = _check_for_serving(sys.argv[1])
assert loaded is not None
assert loaded[0].page_routes == () and [b.name for b in loaded[0].backends] == ["origin", "route:img"]
import sluicegate.server.run, sluicegate.server.supervisor
import sluicegate.teams.admin_api
print(" ".join(sorted(sys.modules)))
"""
# what a supervisor must never carry: the config model (pydantic), the app and its subsystems, the serving
# cores, the image engine, the tool commands, the teams key store
NOT_IN_SUPERVISOR = ("pydantic", "pydantic_core", "sluicegate.config", "sluicegate.server.app",
                     "sluicegate.publisher.app", "sluicegate.images.serve", "pyvips", "sluicegate.inference",
                     "sluicegate.pipeline.html", "sluicegate.server.h1", "uvicorn", "sluicegate.bench",
                     "sluicegate.teams.manage", "sqlite3", "sluicegate.firstparty")


def test_the_supervisor_path_imports_no_app(tmp_path: Path) -> None:
    cfg = tmp_path / "img.toml"
    cfg.write_text(f"""[server]\nport = {free_port()}\n[publisher]\norigin_url = "http://127.0.0.1:9"
public_hosts = ["*"]\n[[publisher.routes]]\nname = "img"\nprefix = "/img/"\nkind = "asset"
origin_url = "http://127.0.0.1:9"\nimage_optimizer = {{ enabled = true, profile_set = "web" }}
[image_optimizer.profile_sets.web]\ndefault_profile = "w"\nwidths = [800]
[image_optimizer.profile_sets.web.profiles.w]\nwidth = 800\n""")
    out = subprocess.run([sys.executable, "-c", SUPERVISOR_IMPORTS, str(cfg)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    modules = out.stdout.split()
    assert "sluicegate.server.supervisor" in modules and "sluicegate.server.supervisor_view" in modules
    carried = [m for m in modules if any(m == n or m.startswith(n + ".") for n in NOT_IN_SUPERVISOR)]
    assert carried == []


def test_a_native_worker_does_not_import_uvicorn() -> None:
    code = ("import sys, sluicegate.server.worker as w, sluicegate.server.h1.serve\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('uvicorn', 'click')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
