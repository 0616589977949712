"""(c) Warehouse server kill -9 and restart under load (same port, same chDB directory).

While it is down the flow's inserts fail and are retried with backoff (the source stops being
polled: backpressure), the gateway keeps acknowledging (the broker holds the events); once the
server is back the retried inserts carry their dedup tokens, so an insert that reached the server
before the kill is not written twice."""

import time
import uuid
from pathlib import Path

import pytest

from eventpulse.config.broker import BrokerSettings
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.schema import migrate
from tests.support.faults import Pipeline, kill_group
from tests.support.load import LoadDriver
from tests.support.services import free_port, start_warehouse

pytestmark = [pytest.mark.integration, pytest.mark.faults]

DOWN_S = 3.0


def test_warehouse_server_kill_9_and_restart(broker_settings: BrokerSettings, tmp_path: Path, record) -> None:
    port = free_port()
    path, log = tmp_path / "warehouse", tmp_path / "warehouse.log"
    server = start_warehouse(path, port, log)
    warehouse = WarehouseSettings(url=f"http://127.0.0.1:{port}", database="faults")
    migrate(warehouse)
    pipeline = Pipeline(tmp_path, broker_settings, warehouse)
    try:
        pipeline.start_flow()
        pipeline.start_gateway()
        load = LoadDriver(pipeline.url, [pipeline.key("acme")], run=f"c{uuid.uuid4().hex[:6]}")
        with load:
            load.wait_for(500)
            pipeline.kill(server)
            acked_at_kill = len(load.acknowledged)
            time.sleep(DOWN_S)
            acked_while_down = len(load.acknowledged) - acked_at_kill
            server = start_warehouse(path, port, log)
            load.wait_for(len(load.acknowledged) + 500)
        result = pipeline.check(load)
        recover = pipeline.recovery_s(load)
    finally:
        pipeline.close()
        kill_group(server)
    record(
        "(c) warehouse server kill -9, restart",
        result,
        recover,
        f"down {DOWN_S:.0f} s; {acked_while_down} events acknowledged meanwhile",
    )
    assert load.stats.gave_up == 0
    assert acked_while_down > 0  # the gateway kept acknowledging while the warehouse was away
    assert result.exact, result.describe()
