"""Throwaway TLS material for tests: a CA of the test's own and a server certificate it signed."""

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the CA clients trust, and the server's certificate chain and key."""

    ca: Path
    cert: Path
    key: Path
    other_ca: Path  # a CA that did not sign the server's certificate (negative controls)


def make_tls_files(folder: Path, *hosts: str) -> TlsFiles:
    """A CA and a certificate for ``hosts`` (default 127.0.0.1 and localhost) written under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert(*(hosts or ("127.0.0.1", "localhost")))
    files = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key", folder / "other-ca.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    server.private_key_pem.write_to_path(str(files.key))
    server.cert_chain_pems[0].write_to_path(str(files.cert))
    for extra in server.cert_chain_pems[1:]:
        extra.write_to_path(str(files.cert), append=True)
    trustme.CA().cert_pem.write_to_path(str(files.other_ca))
    return files
