"""AWS Signature Version 4 for asset routes on S3-compatible backends (``[[publisher.routes]] s3 = {...}``).

Owns: loading the credentials (from environment variables named in the config, or from an AWS
shared-credentials file; never from the TOML itself), the canonical form of the target path the
backend will recompute (each path byte percent-decoded once and re-encoded with AWS's rules, so a key
with ``+``, spaces or non-ASCII signs the same on both sides), and the signature itself.

The signing is botocore's ``S3SigV4Auth`` (AWS's own, maintained with the SDK; an optional extra:
``pip install 'sluicegate[s3]'``) rather than hand-rolled HMAC code; the only change made to it is that
the payload is always ``UNSIGNED-PAYLOAD`` (asset requests have no body). Signed headers are ``host``,
``x-amz-date``, ``x-amz-content-sha256`` (and ``x-amz-security-token`` with a session token): the client's
allowlisted headers travel unsigned, so nothing a client sends can break the signature. Signing happens
on the final target (after the route's path rewrite and query policy).

Secrets never appear in errors or logs: messages name the variable or file, not the value.
Must not know about sockets or the relay.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from sluicegate.config.origin import Origin
from sluicegate.config.routes import S3Auth

Headers = list[tuple[str, str]]
_AMZ = ("authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token")


class Credentials:
    __slots__ = ("access_key", "secret_key", "token")

    def __init__(self, access_key: str, secret_key: str, token: str | None) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.token = token

    def __repr__(self) -> str:  # never the secret
        return f"Credentials(access_key={self.access_key!r}, secret_key=***)"


def load_credentials(auth: S3Auth, environ: Mapping[str, str] | None = None) -> Credentials:
    """From the named variables or the credentials file; ``ValueError`` naming what is missing."""
    env = os.environ if environ is None else environ
    if auth.credentials_file:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            with open(auth.credentials_file, encoding="utf-8") as f:
                parser.read_file(f)
        except OSError as exc:
            raise ValueError(f"credentials_file {auth.credentials_file}: cannot read: {exc.strerror}") from None
        except configparser.Error:
            raise ValueError(f"credentials_file {auth.credentials_file}: not an AWS credentials file") from None
        if not parser.has_section(auth.profile):
            raise ValueError(f"credentials_file {auth.credentials_file}: no [{auth.profile}] section")
        section = parser[auth.profile]
        key, secret = section.get("aws_access_key_id", ""), section.get("aws_secret_access_key", "")
        if not key or not secret:
            raise ValueError(
                f"credentials_file {auth.credentials_file} [{auth.profile}]: "
                "aws_access_key_id and aws_secret_access_key are needed"
            )
        return Credentials(key.strip(), secret.strip(), (section.get("aws_session_token") or "").strip() or None)
    missing = [n for n in (auth.access_key_id_env, auth.secret_access_key_env) if not env.get(n)]
    if missing:
        raise ValueError(f"credentials: environment variable {', '.join(missing)} is not set")
    token = env.get(auth.session_token_env, "") if auth.session_token_env else ""
    if auth.session_token_env and not token:
        raise ValueError(f"credentials: environment variable {auth.session_token_env} is not set")
    return Credentials(env[auth.access_key_id_env], env[auth.secret_access_key_env], token or None)


def canonical_target(target: str) -> str:
    """The target with its path in AWS's canonical encoding (decoded once, unreserved + ``/`` kept)."""
    path, sep, query = target.partition("?")
    path = quote(unquote_to_bytes(path), safe="/~")
    return path + sep + query


def _signer_class() -> Any:
    try:
        from botocore.auth import S3SigV4Auth
    except ImportError:
        raise ValueError(
            "s3 signing needs botocore (the optional extra: pip install 'sluicegate[s3]')"
        ) from None

    class UnsignedPayloadS3SigV4(S3SigV4Auth):  # type: ignore[misc]
        """botocore's S3 signer; the payload is always UNSIGNED-PAYLOAD (GET/HEAD have no body)."""

        def _should_sha256_sign_payload(self, request: Any) -> bool:
            return False

    return UnsignedPayloadS3SigV4


class S3Signer:
    """One per asset route: credentials loaded once (a reload re-reads them)."""

    def __init__(self, auth: S3Auth, origin: Origin, environ: Mapping[str, str] | None = None) -> None:
        self.auth = auth
        self.origin = origin
        self.credentials = load_credentials(auth, environ)
        self._signer = _signer_class()(self.credentials, auth.service, auth.region)
        from botocore.awsrequest import AWSRequest

        self._request_class = AWSRequest

    def sign(self, method: str, target: str, headers: Headers) -> tuple[str, Headers]:
        """``(target, headers)`` to send: the target in canonical form, the headers plus the signature."""
        target = canonical_target(target)
        host = next((v for k, v in headers if k.lower() == "host"), self.origin.authority)
        url = f"{self.origin.scheme}://{host}{target}"
        request = self._request_class(method=method, url=url, headers={"host": host})
        self._signer.add_auth(request)
        signed = [(k, v) for k, v in headers if k.lower() not in _AMZ]
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Content-SHA256", "X-Amz-Security-Token"):
            value = request.headers.get(name)
            if value:
                signed.append((name.lower(), value))
        return target, signed
