"""A throwaway certificate authority made with the ``openssl`` command at test time (no key ever committed)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class Pki:
    """A CA and leaf certificates for localhost signed by it, in ``d``."""

    def __init__(self, d: Path) -> None:
        self.d = d
        self.ca_key, self.ca = d / "ca.key", d / "ca.pem"
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                "-subj", "/CN=sluicegate test CA", "-keyout", str(self.ca_key), "-out", str(self.ca))

    def leaf(self, name: str) -> tuple[Path, Path]:
        key, csr, cert, ext = (self.d / f"{name}.{s}" for s in ("key", "csr", "pem", "ext"))
        ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={name}",
                "-keyout", str(key), "-out", str(csr))
        openssl("x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey", str(self.ca_key),
                "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert))
        return cert, key
