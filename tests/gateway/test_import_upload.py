"""``POST /api/import`` against a real gateway, broker, warehouse and dataflow."""

import gzip
import io
import json

import pyarrow.parquet as pq

from devstack.traffic.import_files import event_table
from eventpulse.config.gateway import GatewaySettings
from eventpulse.config.imports import ImportSettings
from eventpulse.config.redis import RedisSettings
from eventpulse.settings import Settings
from eventpulse.warehouse.client import create_client
from tests.gateway.conftest import now_ms, read_topic, serve, wait_for_key
from tests.support.pipeline import run_flow_until_drained
from tests.support.services import free_port

PARQUET = {"Content-Type": "application/vnd.apache.parquet"}


def _settings(broker, warehouse, **imports) -> Settings:
    return Settings(
        broker=broker,
        warehouse=warehouse,
        redis=RedisSettings(url=""),
        gateway=GatewaySettings(port=free_port()),
        imports=ImportSettings(**imports),
    )


def test_an_uploaded_file_lands_once_even_when_uploaded_twice(broker_settings, warehouse, make_key, tmp_path) -> None:
    buffer = io.BytesIO()
    pq.write_table(event_table(3000, now_ms(), shape="nested", users=300), buffer)
    ndjson = b"\n".join([json.dumps({"type": "t", "source": "s", "timestamp": now_ms()}).encode(), b"{broken"])
    key = make_key("uploader")
    with serve(_settings(broker_settings, warehouse)) as gw:
        wait_for_key(gw, key)
        with gw.client(key) as client:
            first = client.post("/api/import", content=buffer.getvalue(), headers=PARQUET)
            again = client.post("/api/import", content=buffer.getvalue(), headers=PARQUET)
            mixed = client.post(
                "/api/import",
                content=gzip.compress(ndjson),
                headers={"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"},
            )
    assert first.status_code == 200, first.text
    assert first.json() == {**again.json()} and first.json()["accepted"] == 3000 and first.json()["rejected"] == 0
    assert (mixed.status_code, mixed.json()["accepted"], mixed.json()["rejected"]) == (200, 1, 1)
    on_topic = read_topic(broker_settings.bootstrap, broker_settings.events_topic, expect=6001)
    assert len(on_topic) == 6001 and {v["tenant"] for _, v in on_topic} == {"uploader"}
    run_flow_until_drained(broker_settings, warehouse, log=tmp_path / "flow.log")
    client = create_client(warehouse, role="admin")
    try:
        stored = client.query("SELECT count(), uniqExact(id) FROM events FINAL WHERE tenant = 'uploader'").result_rows
        refused = client.query("SELECT reason FROM dead_letters FINAL WHERE stage = 'import'").result_rows
    finally:
        client.close()
    assert stored == [(3001, 3001)]  # the second upload's 3,000 messages carried the same ids
    assert refused == [("malformed_json",)]


def test_uploads_are_refused_by_key_scope_type_and_size(broker_settings, warehouse, make_key) -> None:
    ingest, reader = make_key("uploader"), make_key("uploader", scopes=("read",))
    with serve(_settings(broker_settings, warehouse, max_upload_bytes=1000)) as gw:
        wait_for_key(gw, ingest)
        wait_for_key(gw, reader)
        with gw.client() as anonymous:
            assert anonymous.post("/api/import", content=b"x", headers=PARQUET).status_code == 401
        with gw.client(reader) as client:
            assert client.post("/api/import", content=b"x", headers=PARQUET).status_code == 403
        with gw.client(ingest) as client:
            assert (
                client.post("/api/import", content=b"[]", headers={"Content-Type": "application/json"}).status_code
                == 415
            )
            chunks = (b"x" * 400 for _ in range(3))  # streamed: no Content-Length, refused past the limit
            too_large = client.post("/api/import", content=chunks, headers=PARQUET)
            assert too_large.status_code == 413 and too_large.json()["error"] == "payload_too_large"
            assert client.post("/api/import", content=b"not parquet", headers=PARQUET).status_code == 400
    assert read_topic(broker_settings.bootstrap, broker_settings.events_topic, idle_s=0.5) == []
