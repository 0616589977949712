"""All settings in one place.

``Settings()`` reads the environment when called (never at import). Each section has its own
``EVENTPULSE_<SECTION>_`` prefix; the top level reads ``EVENTPULSE_DATA_DIR``. Defaults point at
the local stack on 127.0.0.1 (broker 9092, warehouse 8123, gateway 8000, Dagster 3000,
Streamlit 8501; Redis only when ``EVENTPULSE_REDIS_URL`` is set); the same variables point the
code at docker-compose or production.
"""

from pathlib import Path
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from eventpulse.access.credentials import users_file_for
from eventpulse.config.access import AccessSettings
from eventpulse.config.base import Section
from eventpulse.config.broker import BrokerSettings
from eventpulse.config.dashboard import DashboardSettings
from eventpulse.config.events import EventLimits
from eventpulse.config.gateway import GatewaySettings
from eventpulse.config.imports import ImportSettings
from eventpulse.config.orchestration import OrchestrationSettings
from eventpulse.config.redis import RedisSettings
from eventpulse.config.schemas import SchemaRegistrySettings
from eventpulse.config.stack import StackSettings
from eventpulse.config.stream import StreamSettings
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.config.webhooks import WebhookSettings


class Settings(Section):
    """The platform's settings. ``EVENTPULSE_DATA_DIR`` holds local state (default ``.data``)."""

    model_config = SettingsConfigDict(env_prefix="EVENTPULSE_")

    data_dir: Path = Field(Path(".data"), description="Local state: warehouse files, Dagster home, keys.")
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    warehouse: WarehouseSettings = Field(default_factory=WarehouseSettings)
    events: EventLimits = Field(default_factory=EventLimits)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    orchestration: OrchestrationSettings = Field(default_factory=OrchestrationSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    stack: StackSettings = Field(default_factory=StackSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    access: AccessSettings = Field(default_factory=AccessSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    schemas: SchemaRegistrySettings = Field(default_factory=SchemaRegistrySettings)
    imports: ImportSettings = Field(default_factory=ImportSettings)

    @model_validator(mode="after")
    def _local_credentials(self) -> Self:
        """Without ``EVENTPULSE_WAREHOUSE_CREDENTIALS_FILE``, use the local stack's users file."""
        if self.warehouse.credentials_file is None:
            located = self.warehouse.model_copy(update={"credentials_file": users_file_for(self.warehouse_path())})
            object.__setattr__(self, "warehouse", located)  # frozen: set once, while validating
        return self

    def warehouse_path(self) -> Path:
        """The chDB directory the local warehouse server opens."""
        return self.warehouse.path or self.data_dir / "warehouse"

    def webhook_key_file(self) -> Path:
        """The file with the key(s) that encrypt webhook secrets when ``EVENTPULSE_WEBHOOKS_SECRETS_KEY`` is unset."""
        return self.webhooks.secrets_key_file or self.data_dir / "webhook.key"

    def import_checkpoint_dir(self) -> Path:
        """Where `eventpulse import` keeps its per-file checkpoints."""
        return self.imports.checkpoint_dir or self.data_dir / "import-checkpoints"

    def broker_store_path(self) -> Path:
        """The directory the local broker's object store (s3rver) keeps its objects in."""
        return self.broker.store_path or self.data_dir / "broker"
