"""The ingestion gateway (gateway/)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from eventpulse.config.base import Section


class GatewaySettings(Section):
    """Listen address and request limits of the HTTP gateway.

    Environment: ``EVENTPULSE_GATEWAY_<FIELD>``, e.g. ``EVENTPULSE_GATEWAY_PORT``.
    """

    model_config = SettingsConfigDict(env_prefix="EVENTPULSE_GATEWAY_")

    host: str = Field("127.0.0.1")
    port: int = Field(8000)
    max_batch_events: int = Field(10_000, gt=0)
    max_batch_bytes: int = Field(5 * 1024 * 1024, gt=0)
