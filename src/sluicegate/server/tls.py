"""TLS termination on the public listener: the server-side ``SSLContext`` and its start-up checks.

Owns: building the
context from ``[server.tls]`` (PEM certificate chain + key; TLS 1.2 or 1.3 minimum; a modern AEAD-only
cipher list for TLS 1.2 (ECDHE with AES-GCM or ChaCha20-Poly1305), TLS 1.3 suites as OpenSSL ships them; no
compression, no renegotiation, server cipher preference; ALPN offers only what the workers speak: ``h2`` then
``http/1.1`` with ``[server] http2`` (server/h2), else ``http/1.1``) and turning every problem with the files
into one line (``TlsProblem``). Each worker builds its own context when it starts, so a SIGHUP reload (new
workers, old ones drain) picks up renewed certificate files without dropping a connection; the supervisor
checks the new files first and refuses a reload they would break. Must not know about requests or the process
model.
"""

from __future__ import annotations

import ssl

from sluicegate.config.model import ServerSettings

# TLS 1.2: forward-secret AEAD suites only (the Mozilla "intermediate" list, ECDSA and RSA certificates).
MODERN_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
])
ALPN_HTTP1 = ["http/1.1"]
ALPN_H2 = ["h2", "http/1.1"]


class TlsProblem(Exception):
    """One line saying which file and what is wrong with it."""


def tls_files(server: ServerSettings) -> tuple[str, str] | None:
    """(certificate, key) from ``[server.tls]`` or the older ``tls_certfile``/``tls_keyfile``; None = plain."""
    tls = server.tls
    if tls.cert_file:
        return tls.cert_file, tls.key_file
    if server.tls_certfile:
        return server.tls_certfile, server.tls_keyfile
    return None


def server_context(server: ServerSettings, alpn: list[str] | None = None) -> ssl.SSLContext | None:
    """The listener's context, or None without TLS. Raises ``TlsProblem`` (one line) on any file problem."""
    files = tls_files(server)
    if files is None:
        return None
    cert, key = files
    names = ("server.tls.cert_file", "server.tls.key_file") if server.tls.cert_file else (
        "server.tls_certfile", "server.tls_keyfile")
    for name, path in zip(names, files, strict=True):
        try:
            with open(path, "rb") as f:
                head = f.read(1 << 20)
        except OSError as exc:
            raise TlsProblem(f"{name}: cannot read {path}: {exc.strerror or exc}") from None
        if b"-----BEGIN " not in head:
            raise TlsProblem(f"{name}: {path} is not PEM (no -----BEGIN line)")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3 if server.tls.min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(server.tls.ciphers or MODERN_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    ctx.options |= ssl.OP_SINGLE_ECDH_USE
    try:
        ctx.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
            raise TlsProblem(f"{names[1]}: {key} is not the key of the certificate in {cert}") from None
        raise TlsProblem(f"{names[0]}/{names[1]}: not a usable certificate and key ({exc.reason or exc})") from None
    except (OSError, ValueError) as exc:
        raise TlsProblem(f"{names[0]}/{names[1]}: not a usable certificate and key ({exc})") from None
    ctx.set_alpn_protocols(alpn or ALPN_HTTP1)
    return ctx
