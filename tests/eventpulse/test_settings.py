"""Settings: one place, read from the environment when built, explicit arguments win."""

from pathlib import Path

from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.settings import Settings


def test_defaults_point_at_the_local_stack(monkeypatch) -> None:
    for name in ("EVENTPULSE_BROKER_BOOTSTRAP", "EVENTPULSE_WAREHOUSE_URL", "EVENTPULSE_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.broker.bootstrap == "127.0.0.1:9092"
    assert settings.warehouse.url == "http://127.0.0.1:8123"
    assert (settings.gateway.port, settings.orchestration.port, settings.dashboard.port) == (8000, 3000, 8501)
    assert settings.warehouse_path() == Path(".data/warehouse")


def test_environment_is_read_at_call_time(monkeypatch) -> None:
    monkeypatch.setenv("EVENTPULSE_BROKER_PARTITIONS", "12")
    monkeypatch.setenv("EVENTPULSE_WAREHOUSE_URL", "chdb:///tmp/x")
    monkeypatch.setenv("EVENTPULSE_DATA_DIR", "/srv/ep")
    settings = Settings()
    assert settings.broker.partitions == 12
    assert settings.warehouse.url == "chdb:///tmp/x"
    assert settings.warehouse_path() == Path("/srv/ep/warehouse")


def test_explicit_argument_beats_environment(monkeypatch) -> None:
    monkeypatch.setenv("EVENTPULSE_WAREHOUSE_DATABASE", "from_env")
    assert WarehouseSettings(database="explicit").database == "explicit"
    assert WarehouseSettings().database == "from_env"
