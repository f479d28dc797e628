"""TLS towards origins: the client-side ``SSLContext`` every origin connection of the publisher uses.

Owns: verification on by default (chain + host name, against the system store or a custom ``ca_file``
bundle), TLS 1.2 minimum, ALPN ``http/1.1`` (the pool speaks HTTP/1.1; an origin that would pick h2 by ALPN
must not be offered it). SNI is the caller's ``server_hostname`` (the origin's host name; Python sends none
for an IP address). Must not know about requests or pools.
"""

from __future__ import annotations

import ssl


class OriginTlsProblem(ValueError):
    """A ``ca_file`` that cannot be used: one line."""


def client_context(*, verify: bool = True, ca_file: str = "") -> ssl.SSLContext:
    if ca_file:
        try:
            ctx = ssl.create_default_context(cafile=ca_file)
        except ssl.SSLError as exc:
            raise OriginTlsProblem(f"publisher.ca_file: cannot load {ca_file}: no PEM certificate in it "
                                   f"({exc.reason or exc})") from None
        except OSError as exc:
            reason = exc.strerror or exc
            raise OriginTlsProblem(f"publisher.ca_file: cannot load {ca_file}: {reason}") from None
    else:
        ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
