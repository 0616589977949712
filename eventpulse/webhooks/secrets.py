"""The sources' signing secrets, encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256).

An HMAC is checked with the secret itself, so unlike an API key (``eventpulse.api_keys`` stores a
SHA-256) a signing secret cannot be stored as a hash: ``webhook_sources`` keeps it encrypted, and only
whoever holds the key (``EVENTPULSE_WEBHOOKS_SECRETS_KEY``, or the local stack's key file) can read it.
Several comma-separated keys rotate: the first encrypts, each decrypts (``cryptography``'s MultiFernet).
"""

from __future__ import annotations

import os
import secrets as _random
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from eventpulse.settings import Settings


class SecretsUnavailable(RuntimeError):
    """No key to encrypt or decrypt webhook secrets with."""


class SecretBox:
    """Encrypts and decrypts signing secrets with the configured key(s)."""

    def __init__(self, keys: str) -> None:
        parts = [part.strip() for part in keys.split(",") if part.strip()]
        if not parts:
            raise SecretsUnavailable("the webhook secrets key is empty")
        try:
            self._cipher: MultiFernet = MultiFernet([Fernet(part) for part in parts])
        except ValueError as exc:
            raise SecretsUnavailable(
                f"a webhook secrets key is not a Fernet key (32 url-safe base64 bytes): {exc}"
            ) from None

    def encrypt(self, secret: str) -> str:
        return self._cipher.encrypt(secret.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The secret in ``token``; raises `SecretsUnavailable` when no configured key opens it."""
        try:
            return self._cipher.decrypt(token.encode("ascii")).decode()
        except InvalidToken:
            raise SecretsUnavailable("no configured webhook secrets key decrypts this secret") from None


def new_secret() -> str:
    """A fresh signing secret for a third party (256 random bits)."""
    return f"whsec_{_random.token_urlsafe(32)}"


def new_key() -> str:
    """A fresh Fernet key (for ``EVENTPULSE_WEBHOOKS_SECRETS_KEY``)."""
    return Fernet.generate_key().decode("ascii")


def secret_box(settings: Settings, *, create: bool = False) -> SecretBox:
    """The box for ``settings``: the configured key, else the key file (made, 0600, with ``create``)."""
    configured = settings.webhooks.secrets_key
    if configured is not None and configured.get_secret_value().strip():
        return SecretBox(configured.get_secret_value())
    path = settings.webhook_key_file()
    if not path.exists():
        if not create:
            raise SecretsUnavailable(f"set EVENTPULSE_WEBHOOKS_SECRETS_KEY (no key file at {path})")
        _write_key_file(path, new_key())
    return SecretBox(path.read_text().strip())


def _write_key_file(path: Path, key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(key + "\n")
