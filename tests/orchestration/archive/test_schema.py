"""The archive keeps every column of ``events``; the replay staging table can hold all of them."""

from orchestration.archive.export import ARCHIVE_SCHEMA


def _columns(client, table: str) -> list[str]:
    return [
        name
        for (name,) in client.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String} "
            "ORDER BY position",
            parameters={"t": table},
        ).result_rows
    ]


def test_archive_schema_covers_events_and_replay_staging(warehouse_client):
    assert ARCHIVE_SCHEMA.names == _columns(warehouse_client, "events")
    assert ARCHIVE_SCHEMA.names == _columns(warehouse_client, "events_replay_staging")
