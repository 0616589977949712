"""The client factory reaches the same warehouse over HTTP and in-process (chdb://)."""

import pytest

from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.client import create_client


def test_http_and_chdb_clients_run_bound_queries(
    warehouse: WarehouseSettings, chdb_warehouse: WarehouseSettings
) -> None:
    for settings in (warehouse, chdb_warehouse):
        client = create_client(settings, role="admin")
        assert client.query("SELECT currentDatabase()").result_rows[0][0] == settings.database
        value = client.query("SELECT {s:String} AS s", parameters={"s": "it's \\ 'quoted'"}).result_rows[0][0]
        assert value == "it's \\ 'quoted'"


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        create_client(WarehouseSettings(url="mysql://x"), role="admin")
