"""Access log and request ids over real sockets: one JSON line per request, both faces, ids kept and passed on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import Origin
from tests.integration.ops.helpers import access_lines, get, start, wait_for
from tests.support.servers import free_port

SECRET = "sk-live-Zq81SECRETvalue4242"


def test_json_line_per_request_and_request_id_round_trip(tmp_path: Path, origin: Origin) -> None:
    p = start(tmp_path, origin.url, server='trusted_proxies = ["127.0.0.0/8"]', workers=2)
    try:
        status, h, _b = get(p.url + "/page", headers={"User-Agent": "ops-test", "X-Forwarded-For": "203.0.113.9"})
        assert status == 200
        rid = h["x-request-id"]
        before = len(origin.log.requests)
        status, h, body = get(p.url + "/echo", headers={"X-Request-ID": "abc-123.trace"})
        assert status == 200 and h["x-request-id"] == "abc-123.trace"
        seen = dict((k.lower(), v) for k, v in json.loads(body)["headers"])
        assert seen["x-request-id"] == "abc-123.trace" and len(origin.log.requests) == before + 1
        status, h, _b = get(p.url + "/echo", headers={"X-Request-ID": "bad id with spaces"})
        assert h["x-request-id"] != "bad id with spaces" and len(h["x-request-id"]) == 16
        status, h, body = get(p.url + "/status/404")
        lines = wait_for(lambda: len(access_lines(p)) >= 4 and access_lines(p), what="4 access lines")
        assert len(lines) == 4  # exactly one per request
        first = next(x for x in lines if x["request_id"] == rid)
        assert first["status"] == 200 and first["route"] == "stream" and first["kind"] == "html"
        assert first["face"] == "publisher" and first["upstream_status"] == 200
        assert first["bytes_out"] > 1000 and first["ttfb_ms"] > 0 and first["duration_ms"] >= first["ttfb_ms"]
        assert first["upstream_ms"] is not None and first["user_agent"] == "ops-test"
        assert first["client_ip"] == "203.0.113.9"  # from XFF: the peer is a trusted proxy
        assert any(x["request_id"] == "abc-123.trace" and x["path"] == "/echo" for x in lines)
    finally:
        p.stop()


def test_request_id_trust_and_header_name(tmp_path: Path, origin: Origin) -> None:
    p = start(tmp_path, origin.url, server='request_id_trust = "none"\nrequest_id_header = "X-Trace-Id"')
    try:
        status, h, body = get(p.url + "/echo", headers={"X-Trace-Id": "client-chosen", "X-Forwarded-For": "1.2.3.4"})
        assert status == 200 and h["x-trace-id"] != "client-chosen" and "x-request-id" not in h
        seen = dict((k.lower(), v) for k, v in json.loads(body)["headers"])
        assert seen["x-trace-id"] == h["x-trace-id"]
        line = wait_for(lambda: access_lines(p), what="an access line")[0]
        assert line["client_ip"] == "127.0.0.1"  # untrusted peer: its XFF is not believed
    finally:
        p.stop()


def test_template_and_off(tmp_path: Path, origin: Origin) -> None:
    (tmp_path / "a").mkdir()
    p = start(tmp_path / "a", origin.url,
              server='access_log = "$client_ip $method $path $status rid=$request_id \\"$user_agent\\""')
    try:
        _status, h, _b = get(p.url + "/page", headers={"User-Agent": 'evil" agent\\'})
        want = f'127.0.0.1 GET /page 200 rid={h["x-request-id"]} "evil'
        line = wait_for(lambda: [x for x in p.log().splitlines() if x.startswith(want)], what="template line")[0]
        assert line.endswith('evil\\x22 agent\\x5c"')  # the client's quote and backslash cannot break the quoting
    finally:
        p.stop()
    (tmp_path / "b").mkdir()
    p = start(tmp_path / "b", origin.url, server='access_log = "off"')
    try:
        assert get(p.url + "/page")[0] == 200
        assert not access_lines(p) and "GET /page" not in p.log()
    finally:
        p.stop()


def test_inference_lines_rejections_logged_and_secrets_never_appear(tmp_path: Path, origin: Origin) -> None:
    mock_port = free_port()
    mock = subprocess.Popen([sys.executable, "-m", "sluicegate.dev.mock_provider", "--port", str(mock_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    extra = f"""
[inference]
path_prefix = "/llm"

[[inference.providers]]
name = "upstream-a"
kind = "openai-compatible"
base_url = "http://127.0.0.1:{mock_port}/v1"
api_key_env = "OPS_TEST_PROVIDER_KEY"

[[inference.models]]
name = "chat"
targets = [{{ provider = "upstream-a", model = "mock-1" }}]
"""
    try:
        wait_for(lambda: _port_open(mock_port), what="mock provider")
        p = start(tmp_path, origin.url, extra=extra, env={"OPS_TEST_PROVIDER_KEY": SECRET})
        try:
            import urllib.request

            def post(body: dict[str, object]) -> tuple[int, dict[str, str], bytes]:
                req = urllib.request.Request(p.url + "/llm/v1/chat/completions", data=json.dumps(body).encode(),
                                             headers={"content-type": "application/json",
                                                      "authorization": "Bearer client-" + SECRET})
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        return r.status, dict(r.headers.items()), r.read()
                except urllib.error.HTTPError as exc:
                    return exc.code, dict(exc.headers.items()), exc.read()

            ok = post({"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
            assert ok[0] == 200
            rejected = post({"model": "no-such-model", "messages": []})
            assert rejected[0] == 404
            malformed = post({"messages": []})
            assert malformed[0] == 400
            lines = wait_for(lambda: len(access_lines(p)) >= 3 and access_lines(p), what="3 lines")
            by_status = {x["status"]: x for x in lines}
            good = by_status[200]
            assert good["face"] == "inference" and good["route"] == "openai_chat_completions"
            assert good["model"] == "chat" and good["provider"] == "upstream-a" and good["upstream_status"] == 200
            assert good["tokens_in"] is not None and good["tokens_out"] is not None
            assert by_status[404]["error"] == "unknown_model" and by_status[404]["model"] == "no-such-model"
            assert by_status[400]["error"]
            assert SECRET not in p.log()
            assert SECRET.encode() not in get(p.admin_url + "/metrics")[2]
            assert SECRET.encode() not in get(p.admin_url + "/status")[2]
        finally:
            p.stop()
        assert SECRET not in p.log()
    finally:
        mock.terminate()
        mock.wait(5)


def _port_open(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False
