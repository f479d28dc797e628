"""Which ASGI server runs sluicegate fastest here? uvicorn (uvloop+httptools) vs granian, same app.

Origin: nginx serving a 2 KB HTML page and a 200 KB binary. For each server (1 worker), wrk -t2 -c64
for 5 s per run, 3 runs round-robin; prints medians and writes bench/results/server-choice.json.
Usage: .venv/bin/python bench/stack/server_choice.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(url: str) -> None:
    for _ in range(200):
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


def wrk(url: str, seconds: int = 5) -> tuple[float, str]:
    out = subprocess.run(
        ["wrk", "-t2", "-c64", f"-d{seconds}s", "--latency", url], capture_output=True, text=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+(\S+)", out)
    return rps, p99.group(1) if p99 else "?"


def main() -> None:
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} missing: apt-get install -y nginx wrk")
    tmp = Path(tempfile.mkdtemp(prefix="sg-server-choice-"))
    tmp.chmod(0o755)  # nginx workers run as nobody
    (tmp / "www").mkdir()
    (tmp / "www/page2k.html").write_bytes(b"<p>" + b"x" * 2041 + b"</p>")
    (tmp / "www/blob200k.bin").write_bytes(os.urandom(200 * 1024))
    oport = free_port()
    (tmp / "nginx.conf").write_text(f"""
worker_processes 1; daemon off; pid {tmp}/nginx.pid; error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; types {{ text/html html; application/octet-stream bin; }}
  server {{ listen 127.0.0.1:{oport}; root {tmp}/www; }} }}
""")
    nginx = subprocess.Popen(["nginx", "-p", str(tmp), "-c", str(tmp / "nginx.conf")])
    wait(f"http://127.0.0.1:{oport}/page2k.html")
    pport = free_port()
    cfg = tmp / "sg.toml"
    cfg.write_text(f'[publisher]\norigin_url = "http://127.0.0.1:{oport}"\npublic_hosts = ["*"]\n')
    env = {**os.environ, "SLUICEGATE_CONFIG": str(cfg)}
    servers = {
        "uvicorn(uvloop,httptools)": [
            str(VENV_BIN / "sluicegate"),
            "serve",
            "--config",
            str(cfg),
            "--port",
            str(pport),
        ],
        "granian(asgi,uvloop)": [
            str(VENV_BIN / "granian"),
            "--interface",
            "asgi",
            "--factory",
            "--loop",
            "uvloop",
            "--host",
            "127.0.0.1",
            "--port",
            str(pport),
            "--no-ws",
            "sluicegate.server.app:create_app",
        ],
    }
    results: dict[str, dict[str, list[float]]] = {name: {"2k": [], "200k": []} for name in servers}
    try:
        for rep in range(3):
            order = list(servers) if rep % 2 == 0 else list(reversed(servers))
            for name in order:
                proc = subprocess.Popen(
                    servers[name], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
                )
                try:
                    wait(f"http://127.0.0.1:{pport}/page2k.html")
                    wrk(f"http://127.0.0.1:{pport}/page2k.html", 1)
                    for page, path in (("2k", "/page2k.html"), ("200k", "/blob200k.bin")):
                        rps, p99 = wrk(f"http://127.0.0.1:{pport}{path}")
                        results[name][page].append(rps)
                        print(f"run {rep} {name:28} {page:5} {rps:9.0f} req/s  p99 {p99}", flush=True)
                finally:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(10)
    finally:
        nginx.terminate()
        nginx.wait(5)
    summary = {name: {page: statistics.median(v) for page, v in pages.items()} for name, pages in results.items()}
    print(json.dumps(summary, indent=2))
    out = ROOT / "bench/results/server-choice.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"raw": results, "median": summary, "loadavg": os.getloadavg()}, indent=2))


if __name__ == "__main__":
    main()
