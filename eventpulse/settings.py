"""All settings in one place.

``Settings()`` reads the environment when called (never at import). Each section has its own
``EVENTPULSE_<SECTION>_`` prefix; the top level reads ``EVENTPULSE_DATA_DIR``. Defaults point at
the local stack on 127.0.0.1 (broker 9092, warehouse 8123, gateway 8000, Dagster 3000,
Streamlit 8501); the same variables point the code at docker-compose or production.
"""

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from eventpulse.config.base import Section
from eventpulse.config.broker import BrokerSettings
from eventpulse.config.dashboard import DashboardSettings
from eventpulse.config.events import EventLimits
from eventpulse.config.gateway import GatewaySettings
from eventpulse.config.orchestration import OrchestrationSettings
from eventpulse.config.stack import StackSettings
from eventpulse.config.stream import StreamSettings
from eventpulse.config.warehouse import WarehouseSettings


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

    def warehouse_path(self) -> Path:
        """The chDB directory the local warehouse server opens."""
        return self.warehouse.path or self.data_dir / "warehouse"

    def broker_store_path(self) -> Path:
        """The directory the local broker's object store (s3rver) keeps its objects in."""
        return self.broker.store_path or self.data_dir / "broker"
