"""Signing secrets are stored encrypted (Fernet), with rotation of the key, and the local key file."""

import stat

import pytest
from pydantic import SecretStr

from eventpulse.config.webhooks import WebhookSettings
from eventpulse.settings import Settings
from eventpulse.webhooks.secrets import SecretBox, SecretsUnavailable, new_key, new_secret, secret_box


def test_a_secret_round_trips_and_is_not_in_its_token() -> None:
    box = SecretBox(new_key())
    secret = new_secret()
    token = box.encrypt(secret)
    assert secret not in token and box.decrypt(token) == secret
    assert box.encrypt(secret) != token  # a fresh IV each time


def test_rotation_the_first_key_encrypts_every_key_decrypts() -> None:
    old, new = new_key(), new_key()
    token = SecretBox(old).encrypt("s" * 20)
    rotated = SecretBox(f"{new},{old}")
    assert rotated.decrypt(token) == "s" * 20
    with pytest.raises(SecretsUnavailable, match="no configured webhook secrets key"):
        SecretBox(new).decrypt(token)  # the old key dropped: its secrets cannot be read


def test_a_bad_key_is_refused() -> None:
    with pytest.raises(SecretsUnavailable, match="not a Fernet key"):
        SecretBox("not-a-key")


def test_the_local_key_file_is_made_once_with_mode_0600(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path)
    with pytest.raises(SecretsUnavailable, match="EVENTPULSE_WEBHOOKS_SECRETS_KEY"):
        secret_box(settings)
    token = secret_box(settings, create=True).encrypt("x" * 20)
    assert stat.S_IMODE((tmp_path / "webhook.key").stat().st_mode) == 0o600
    assert secret_box(settings).decrypt(token) == "x" * 20  # the same key next time


def test_the_configured_key_beats_the_file(tmp_path) -> None:
    key = new_key()
    settings = Settings(data_dir=tmp_path, webhooks=WebhookSettings(secrets_key=SecretStr(key)))
    assert SecretBox(key).decrypt(secret_box(settings).encrypt("y" * 20)) == "y" * 20
    assert not (tmp_path / "webhook.key").exists()
