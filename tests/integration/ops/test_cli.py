"""`sluicegate serve` start-up failures (one line, exit code 2) and `sluicegate demo` lifecycle, as processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.integration.ops.helpers import wait_for
from tests.support.servers import free_port


def serve(config: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sluicegate", "serve", "--config", str(config)],
                          capture_output=True, text=True, timeout=timeout)


def one_clear_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_port_in_use_tls_missing_unreadable_config(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = tmp_path / "a.toml"
        cfg.write_text(f'[server]\nport = {port}\n[admin]\nlisten = "127.0.0.1:{free_port()}"\n')
        line = one_clear_line(serve(cfg))
        assert line == f"sluicegate: cannot listen on 127.0.0.1:{port} (server.port): Address already in use"
        cfg.write_text(f'[server]\nport = {free_port()}\n[admin]\nlisten = "127.0.0.1:{port}"\n')
        line = one_clear_line(serve(cfg))
        assert line == f"sluicegate: cannot listen on 127.0.0.1:{port} (admin.listen): Address already in use"
    cfg.write_text(f'[server]\nport = {free_port()}\ntls_certfile = "{tmp_path}/nope.pem"\n'
                   f'tls_keyfile = "{tmp_path}/nope.key"\n[admin]\nlisten = "127.0.0.1:{free_port()}"\n')
    line = one_clear_line(serve(cfg))
    assert line == f"sluicegate: server.tls_certfile: cannot read {tmp_path}/nope.pem: No such file or directory"
    line = one_clear_line(serve(tmp_path))  # a directory
    assert line.startswith(f"{tmp_path}: cannot read:")
    line = one_clear_line(serve(tmp_path / "missing.toml"))
    assert line == f"{tmp_path / 'missing.toml'}: cannot read: No such file or directory"
    cfg.write_bytes(b"[server]\nport = \xff\n")
    assert one_clear_line(serve(cfg)).startswith(f"{cfg}: not UTF-8 text")
    cfg.write_text('[server]\nport = "8181"\n')
    assert one_clear_line(serve(cfg)) == f"{cfg}:2: server.port: Input should be a valid integer (got str '8181')"


def _demo(tmp_path: Path, origin_port: int, port: int, admin_port: int, mock_port: int = 0) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sluicegate", "demo", "--port", str(port), "--origin-port", str(origin_port),
         "--admin-port", str(admin_port), "--mock-port", str(mock_port or free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_demo_refuses_a_taken_origin_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        origin_port = busy.getsockname()[1]
        proc = _demo(tmp_path, origin_port, free_port(), free_port())
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert f"origin port {origin_port} already in use" in err and "Traceback" not in err


def test_demo_prints_try_this_and_stops_everything_on_sigterm(tmp_path: Path) -> None:
    origin_port, port, admin_port, mock_port = free_port(), free_port(), free_port(), free_port()
    proc = _demo(tmp_path, origin_port, port, admin_port, mock_port)
    try:
        wait_for(lambda: _listening(admin_port) and _listening(port), timeout=30, what="demo up")
        # The inference face answers from the mock provider the demo started beside the proxy.
        req = urllib.request.Request(f"http://127.0.0.1:{port}/llm/v1/chat/completions", headers={
            "content-type": "application/json"}, data=b'{"model":"demo","messages":[{"role":"user","content":"hi"}]}')
        with urllib.request.urlopen(req, timeout=10) as r:
            assert b"Hello from the sluicegate mock" in r.read()
        assert _listening(mock_port)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/flight", timeout=5) as r:
            flight = r.read()
            assert r.headers["content-type"].startswith("text/x-component")
        assert f"127.0.0.1:{port}/about".encode() in flight and str(origin_port).encode() not in flight
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as r:
            assert b"sluicegate_requests_total" in r.read()
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert children
        os.kill(proc.pid, signal.SIGTERM)
        out, _err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0
    for needle in (f"curl -s http://127.0.0.1:{port}/flight", "openai.OpenAI(", "/llm/v1/chat/completions",
                   f"http://127.0.0.1:{admin_port}/metrics"):
        assert needle in out
    time.sleep(0.2)
    assert not _listening(origin_port) and not _listening(port) and not _listening(admin_port)
    assert not _listening(mock_port)
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
