"""``[server.tls]``: TLS termination on the public listener (``server/tls.py`` builds the context).

Must not know about sockets; files are read (and judged) when the server starts or reloads.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from sluicegate.config.types import FieldProblem


class TlsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cert_file: str = ""  # PEM certificate chain (leaf first); both or neither
    key_file: str = ""  # PEM private key of the leaf
    min_version: Literal["1.2", "1.3"] = "1.2"
    ciphers: str = ""  # OpenSSL cipher string for TLS 1.2; "" = the built-in modern AEAD list

    @model_validator(mode="after")
    def _pair(self) -> TlsSettings:
        if bool(self.cert_file) != bool(self.key_file):
            missing = "key_file" if self.cert_file else "cert_file"
            raise FieldProblem((missing,), "cert_file and key_file go together")
        return self
