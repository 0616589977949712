"""Fixtures for the orchestration tests: Dagster resources pointed at a fresh test database."""

from pathlib import Path

import pytest

from eventpulse.config.warehouse import WarehouseSettings
from orchestration.resources import AlertingResource, ArchiveResource, PlatformResource, WarehouseResource


@pytest.fixture
def resources(warehouse: WarehouseSettings, tmp_path: Path) -> dict[str, object]:
    """Resources for in-process materializations: the test database and a local archive under tmp_path."""
    return {
        "warehouse": WarehouseResource(url=warehouse.url, database=warehouse.database),
        "archive": ArchiveResource(url=str(tmp_path / "archive")),
        "platform": PlatformResource(data_dir=str(tmp_path)),
        "alerting": AlertingResource(webhook_urls=[]),
    }
