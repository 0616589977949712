"""Inbound webhooks (``POST /api/webhooks/{source}``, see ``docs/operations/webhooks.md``)."""

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from eventpulse.config.base import Section


class WebhookSettings(Section):
    """Signature tolerance, body limit and the key that encrypts the webhook sources' secrets.

    Environment: ``EVENTPULSE_WEBHOOKS_<FIELD>``, e.g. ``EVENTPULSE_WEBHOOKS_SECRETS_KEY``,
    ``EVENTPULSE_WEBHOOKS_TOLERANCE_S``.
    """

    model_config = SettingsConfigDict(env_prefix="EVENTPULSE_WEBHOOKS_")

    secrets_key: SecretStr | None = Field(
        None,
        description="Fernet key(s) that encrypt the sources' signing secrets in `webhook_sources`, comma-separated:"
        " the first encrypts, every one decrypts (rotation). Every gateway and the CLI need the same. Unset: the"
        " key file (secrets_key_file), created by `eventpulse webhooks create` on the local stack.",
    )
    secrets_key_file: Path | None = Field(
        None, description="File holding the Fernet key(s) when secrets_key is unset (default: <data_dir>/webhook.key)."
    )
    tolerance_s: int = Field(
        300,
        ge=1,
        description="A delivery's signed timestamp may differ from the gateway's clock by at most this many seconds"
        " (older or newer: 401 stale_timestamp); a signature is remembered this long to refuse its replay (409).",
    )
    max_body_bytes: int = Field(256 * 1024, gt=0, description="Largest webhook body (413 past it).")
    refresh_s: float = Field(1.0, gt=0, le=5.0, description="Reload the registered sources this often.")
    max_stale_s: float = Field(
        300.0, gt=0, description="Refuse deliveries (503) once the sources could not be reloaded for this long."
    )
