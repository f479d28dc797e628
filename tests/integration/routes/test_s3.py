"""Asset routes signed with AWS SigV4 against a real S3-compatible server (moto in server mode, started here).

moto checks signatures once its first unauthenticated actions are used up (``INITIAL_NO_AUTH_ACTION_COUNT``):
the set-up below spends them on an IAM user, its key, its policy and the bucket; everything after that
(the objects, and every request sluicegate makes) must be signed with that user's key.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import boto3
import pytest
from botocore.config import Config
from yarl import URL

from tests.support.servers import ProxyProcess, free_port

BIG = os.urandom(1024 * 1024 + 3)
PLUS_KEY = "dir/a b+c ü.txt"


@dataclass
class Moto:
    url: str
    key_id: str
    secret: str


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}"
        boot = {"endpoint_url": url, "region_name": "us-east-1", "aws_access_key_id": "AKIASETUP",
                "aws_secret_access_key": "setup"}
        iam = boto3.client("iam", **boot)
        iam.create_user(UserName="assets")
        key = iam.create_access_key(UserName="assets")["AccessKey"]
        iam.put_user_policy(
            UserName="assets", PolicyName="all",
            PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}',
        )
        boto3.client("s3", **boot).create_bucket(Bucket="media")
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
                          aws_secret_access_key=key["SecretAccessKey"], config=Config(s3={"addressing_style": "path"}))
        s3.put_object(Bucket="media", Key="big.bin", Body=BIG, ContentType="application/octet-stream")
        s3.put_object(Bucket="media", Key=PLUS_KEY, Body=b"plus", ContentType="text/plain")
        yield Moto(url, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture(scope="module")
def proxy(moto: Moto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    tmp = tmp_path_factory.mktemp("s3proxy")
    creds = tmp / "credentials"
    creds.write_text(f"[assets]\naws_access_key_id = {moto.key_id}\naws_secret_access_key = {moto.secret}\n")
    text = f"""
[server]
host = "127.0.0.1"
port = {{port}}
[publisher]
origin_url = "http://127.0.0.1:{free_port()}"
public_hosts = ["127.0.0.1:{{port}}"]
[[publisher.routes]]
name = "media"
prefix = "/media"
kind = "asset"
origin_url = "{moto.url}"
cache_control = "public, max-age=600"
s3 = {{ region = "us-east-1", access_key_id_env = "T_ASSETS_KEY_ID", secret_access_key_env = "T_ASSETS_SECRET" }}
[[publisher.routes]]
name = "media-stripped"
prefix = "/m/"
kind = "asset"
origin_url = "{moto.url}"
path_pattern = "^/m/(.+)$"
target_path = "/media/$1"
query = "strip"
s3 = {{ region = "us-east-1", credentials_file = "{creds}", profile = "assets" }}
[[publisher.routes]]
name = "wrong-secret"
prefix = "/wrong"
kind = "asset"
origin_url = "{moto.url}"
path_pattern = "^/wrong/(.+)$"
target_path = "/media/$1"
s3 = {{ region = "us-east-1", access_key_id_env = "T_ASSETS_KEY_ID", secret_access_key_env = "T_WRONG_SECRET" }}
"""
    env = {"T_ASSETS_KEY_ID": moto.key_id, "T_ASSETS_SECRET": moto.secret, "T_WRONG_SECRET": moto.secret[::-1]}
    p = ProxyProcess(tmp, text, env=env).start()
    yield p
    p.stop()
    assert moto.secret not in p.log()  # never logged


async def fetch(url: str, method: str = "GET", **kwargs: object) -> tuple[aiohttp.ClientResponse, bytes]:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as s,
        s.request(method, URL(url, encoded=True), allow_redirects=False, **kwargs) as r,  # type: ignore[arg-type]
    ):
        return r, await r.read()


async def test_signed_get_streams_object(proxy: ProxyProcess) -> None:
    r, body = await fetch(proxy.url + "/media/big.bin", headers={"Authorization": "Bearer client", "Cookie": "a=b"})
    assert r.status == 200 and body == BIG
    assert r.headers["Content-Length"] == str(len(BIG)) and r.headers["Cache-Control"] == "public, max-age=600"


async def test_signed_range_and_head(proxy: ProxyProcess) -> None:
    r, body = await fetch(proxy.url + "/media/big.bin", headers={"Range": "bytes=10-19"})
    assert r.status == 206 and body == BIG[10:20] and r.headers["Content-Range"] == f"bytes 10-19/{len(BIG)}"
    r, body = await fetch(proxy.url + "/media/big.bin", method="HEAD")
    assert r.status == 200 and body == b"" and r.headers["Content-Length"] == str(len(BIG))


async def test_signature_covers_encoded_key_and_query(proxy: ProxyProcess) -> None:
    r, body = await fetch(proxy.url + "/media/dir/a%20b+c%20%C3%BC.txt")
    assert r.status == 200 and body == b"plus"
    r, body = await fetch(proxy.url + "/media/dir/a%20b%2Bc%20%C3%BC.txt?response-content-type=text%2Fx-test")
    assert r.status == 200 and body == b"plus" and r.headers["Content-Type"] == "text/x-test"


async def test_credentials_file_and_query_strip_before_signing(proxy: ProxyProcess) -> None:
    r, body = await fetch(proxy.url + "/m/big.bin?response-content-type=text%2Fevil&X-Amz-Signature=forged")
    assert r.status == 200 and body == BIG and r.headers["Content-Type"] == "application/octet-stream"


async def test_wrong_secret_is_refused_by_the_backend(proxy: ProxyProcess) -> None:
    r, body = await fetch(proxy.url + "/wrong/big.bin")
    assert r.status == 403 and b"SignatureDoesNotMatch" in body


async def test_unsigned_would_be_refused(moto: Moto) -> None:
    r, _ = await fetch(moto.url + "/media/big.bin")  # proves the server checks: the 200s above are the signer's
    assert r.status == 403


def test_missing_credentials_named_not_leaked(tmp_path: Path) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text("""
[publisher]
origin_url = "http://127.0.0.1:9"
public_hosts = ["pub.test"]
[[publisher.routes]]
name = "media"
prefix = "/media"
kind = "asset"
origin_url = "http://127.0.0.1:9"
s3 = { region = "us-east-1", access_key_id_env = "T_NOPE_ID", secret_access_key_env = "T_NOPE_SECRET" }
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("T_NOPE")}
    env["T_NOPE_ID"] = "AKIAVISIBLE"
    out = subprocess.run([sys.executable, "-m", "sluicegate", "check-config", str(cfg)], capture_output=True,
                         text=True, env=env, timeout=60)
    assert out.returncode == 2
    assert "T_NOPE_SECRET is not set" in out.stderr and "publisher.routes[media].s3" in out.stderr
