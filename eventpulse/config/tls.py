"""TLS options shared by the sections that serve or reach a component over TLS."""

from pathlib import Path


def check_pair(section: str, certfile: Path | None, keyfile: Path | None) -> None:
    """A server certificate needs its key and a key its certificate: one without the other is a mistake."""
    if (certfile is None) != (keyfile is None):
        raise ValueError(f"{section}: set both tls_certfile and tls_keyfile (PEM) to serve TLS, or neither")
