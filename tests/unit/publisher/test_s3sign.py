"""S3 credentials and the canonical target (the signature itself is checked against moto in
tests/integration/routes/test_s3.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluicegate.config.origin import Origin
from sluicegate.config.routes import S3Auth
from sluicegate.publisher.s3sign import S3Signer, canonical_target, load_credentials


def test_canonical_target_decodes_once_and_encodes_like_aws() -> None:
    assert canonical_target("/b/a%20b+c%C3%BC.txt?x=1") == "/b/a%20b%2Bc%C3%BC.txt?x=1"
    assert canonical_target("/b/a~b_c-d.e") == "/b/a~b_c-d.e"
    assert canonical_target("/b/%2525") == "/b/%2525"  # a literal '%25' key stays itself


def test_credentials_from_env_never_shown() -> None:
    auth = S3Auth(region="eu-west-1", access_key_id_env="K", secret_access_key_env="S", session_token_env="T")
    creds = load_credentials(auth, {"K": "AKIA1", "S": "topsecret", "T": "tok"})
    assert (creds.access_key, creds.secret_key, creds.token) == ("AKIA1", "topsecret", "tok")
    assert "topsecret" not in repr(creds)
    with pytest.raises(ValueError, match="variable T is not set") as info:
        load_credentials(auth, {"K": "AKIA1", "S": "topsecret"})
    assert "topsecret" not in str(info.value)


def test_credentials_file(tmp_path: Path) -> None:
    f = tmp_path / "credentials"
    f.write_text("[default]\naws_access_key_id = AKIA2\naws_secret_access_key = s2\n[other]\naws_access_key_id = X\n")
    auth = S3Auth(region="us-east-1", credentials_file=str(f))
    assert load_credentials(auth, {}).access_key == "AKIA2"
    with pytest.raises(ValueError, match=r"\[other\]: aws_access_key_id and aws_secret_access_key are needed"):
        load_credentials(S3Auth(region="us-east-1", credentials_file=str(f), profile="other"), {})
    with pytest.raises(ValueError, match="no \\[nope\\] section"):
        load_credentials(S3Auth(region="us-east-1", credentials_file=str(f), profile="nope"), {})
    with pytest.raises(ValueError, match="cannot read"):
        load_credentials(S3Auth(region="us-east-1", credentials_file=str(tmp_path / "missing")), {})


def test_signed_headers_replace_client_ones() -> None:
    auth = S3Auth(region="us-east-1", access_key_id_env="K", secret_access_key_env="S")
    signer = S3Signer(auth, Origin.parse("http://127.0.0.1:9000"), {"K": "AKIA1", "S": "s"})
    target, headers = signer.sign("GET", "/b/k%20x", [("host", "127.0.0.1:9000"), ("authorization", "client"),
                                                      ("x-amz-date", "forged"), ("range", "bytes=0-1")])
    h = dict(headers)
    assert target == "/b/k%20x"
    assert h["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIA1/")
    assert "SignedHeaders=host;x-amz-content-sha256;x-amz-date," in h["authorization"]
    assert h["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD" and h["x-amz-date"] != "forged"
    assert h["range"] == "bytes=0-1" and [k for k, _ in headers].count("authorization") == 1
