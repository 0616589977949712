"""Warehouse outage: the sinks retry with backoff, the flow waits (does not crash, drop or buffer
without bound), and once the warehouse is back everything arrives exactly once."""

import time
import uuid
from datetime import UTC, datetime

import pytest

from devstack.traffic.generator import EventFactory
from eventpulse.aggregation.reconcile import reconcile
from eventpulse.aggregation.spec import window_specs
from eventpulse.config.broker import BrokerSettings
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.client import create_client
from eventpulse.warehouse.schema import migrate
from tests.support.pipeline import produce, start_flow
from tests.support.services import free_port, start_warehouse, stop

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N = 150_000


def _count(settings: WarehouseSettings) -> int:
    client = create_client(settings, role="admin")
    try:
        return client.query("SELECT count() FROM events").result_rows[0][0]
    finally:
        client.close()


def test_flow_survives_a_warehouse_outage(broker_settings: BrokerSettings, tmp_path) -> None:
    port, path, log = free_port(), tmp_path / "warehouse", tmp_path / "warehouse.log"
    server = start_warehouse(path, port, log)
    settings = WarehouseSettings(url=f"http://127.0.0.1:{port}", database=f"o_{uuid.uuid4().hex[:10]}")
    migrate(settings)
    messages = list(EventFactory(seed=5).messages(N, int(time.time() * 1000) - 7_200_000, rate_per_s=20_000))
    produce(broker_settings.bootstrap, broker_settings.events_topic, messages)
    env = {"EVENTPULSE_STREAM_SINK_MAX_BACKOFF_S": "0.5", "EVENTPULSE_STREAM_BATCH_SIZE": "5000"}
    flow = start_flow(broker_settings, settings, extra_env=env, log=tmp_path / "flow.log")
    try:
        deadline = time.monotonic() + 60
        while _count(settings) == 0:  # the flow is writing
            assert time.monotonic() < deadline and flow.poll() is None
            time.sleep(0.1)
        stop(server)
        time.sleep(4)
        assert flow.poll() is None, "the flow must wait for the warehouse, not crash or finish"
        server = start_warehouse(path, port, log)
        assert flow.wait(180) == 0
        retries = (tmp_path / "flow.log").read_text().count("retry in")
        assert retries > 0, "the outage should have made the sinks retry"
    finally:
        stop(flow)
        client = create_client(settings, role="admin")
        valid = sum(m.valid for m in messages)
        try:
            assert client.query("SELECT count(), uniqExact(id) FROM events FINAL").result_rows[0] == (valid, valid)
            dead = client.query("SELECT count() FROM dead_letters FINAL").result_rows[0][0]
            assert dead == N - valid
            everything = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
            differences = reconcile(client, window_specs((10, 60), ((300, 60),)), *everything)
            assert not differences, [d.as_dict() for d in differences[:10]]
        finally:
            client.close()
            stop(server)
