"""Redis, the shared state store (rate limits and idempotency memory shared by gateway replicas)."""

from urllib.parse import urlsplit, urlunsplit

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from eventpulse.config.base import Section


class RedisSettings(Section):
    """Where Redis is, and how long a component waits for it before going on without it.

    An empty ``url`` means no Redis: every component then keeps its state in its own process
    (correct for one process; with N gateway processes a tenant gets N x its rate) and says so on
    its health page. When Redis is configured but unreachable, the gateway fails open to its local
    state and retries Redis every ``retry_s`` (logged, counted in ``/metrics``).

    Environment: ``EVENTPULSE_REDIS_URL`` (e.g. ``redis://127.0.0.1:6379/0``), ``EVENTPULSE_REDIS_KEY_PREFIX``,
    ``EVENTPULSE_REDIS_TIMEOUT_S``, ``EVENTPULSE_REDIS_RETRY_S``, ``EVENTPULSE_REDIS_HOST``,
    ``EVENTPULSE_REDIS_PORT``.
    """

    model_config = SettingsConfigDict(env_prefix="EVENTPULSE_REDIS_")

    url: str = Field("", description="redis:// URL of the shared state store; empty: none (state per process).")
    key_prefix: str = Field("eventpulse:", description="Prefix of every key EventPulse writes.")
    timeout_s: float = Field(
        0.25, gt=0, description="Connect and socket timeout: a Redis slower than this counts as unreachable."
    )
    retry_s: float = Field(1.0, gt=0, description="After a Redis failure, use local state this long before retrying.")
    host: str = Field("127.0.0.1", description="Listen address of the local redis-server `eventpulse up` starts.")
    port: int = Field(6379, description="Listen port of the local redis-server `eventpulse up` starts.")

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def redacted_url(self) -> str:
        """The URL without its password, for health pages and logs."""
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
