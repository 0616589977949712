"""(a) Gateway kill -9 ×3 under load, the client resending failed batches with the same ids.

Each kill comes while the broker is frozen (SIGSTOP) for a moment, so requests are in flight, their
messages sent to the broker but not yet acknowledged; the broker, resumed, writes them, the killed
gateway never answers, the client sends them again and the restarted gateway (its recent-id memory
gone with the process) produces them a second time. The topic then holds those events twice; the raw table deduplicates by id, and the stream must
count each once too (issue 12 item 3). Negative control: the same topic through a flow with
``EVENTPULSE_STREAM_DEDUP=false`` counts the duplicates in the windows.
"""

import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from eventpulse.config.broker import BrokerSettings
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.client import create_client
from eventpulse.warehouse.schema import migrate
from tests.support.faults import FLOW_ENV, Pipeline, families, measure, overcount
from tests.support.load import LoadDriver
from tests.support.pipeline import run_flow_until_drained
from tests.support.services import broker_processes

pytestmark = [pytest.mark.integration, pytest.mark.faults]

KILLS = 3
PER_PHASE = 400  # events acknowledged between two kills


def test_gateway_kill_9_three_times_with_client_retries(warehouse: WarehouseSettings, tmp_path: Path, record) -> None:
    with broker_processes(tmp_path) as processes:
        _scenario(BrokerSettings(bootstrap=processes.bootstrap, partitions=4), processes, warehouse, tmp_path, record)


def _scenario(broker_settings, processes, warehouse: WarehouseSettings, tmp_path: Path, record) -> None:
    pipeline = Pipeline(tmp_path, broker_settings, warehouse)
    try:
        pipeline.start_flow()
        pipeline.start_gateway()
        keys = [pipeline.key("acme"), pipeline.key("globex")]
        load = LoadDriver(pipeline.url, keys, run=f"a{uuid.uuid4().hex[:6]}", rate_per_s=800, batch_size=40)
        with load:
            for _ in range(KILLS):
                load.wait_for(len(load.acknowledged) + PER_PHASE)
                os.killpg(processes.broker.pid, signal.SIGSTOP)
                time.sleep(0.3)  # requests pile up, their messages sent, unacknowledged
                pipeline.kill(pipeline.gateway)
                os.killpg(processes.broker.pid, signal.SIGCONT)  # ... and written now: nobody answers
                pipeline.start_gateway()
            load.wait_for(len(load.acknowledged) + PER_PHASE)
        result = pipeline.check(load)
        recover = pipeline.recovery_s(load)
    finally:
        pipeline.close()
    assert load.stats.gave_up == 0
    resent = load.stats.retries

    # Negative control: the same topic (with its duplicates), counted without the stream's dedup.
    control = WarehouseSettings(url=warehouse.url, database=f"t_{uuid.uuid4().hex[:12]}")
    migrate(control)
    run_flow_until_drained(
        broker_settings,
        control,
        extra_env={**FLOW_ENV, "EVENTPULSE_STREAM_DEDUP": "false"},
        timeout=120,
        log=tmp_path / "control.log",
    )
    client = create_client(control, role="admin")
    try:
        without_dedup = measure(client, load.acknowledged, load.sent, families(), f"{load.run}-")
    finally:
        client.close()
    twice = overcount(without_dedup.differences)  # = the events on the topic twice

    record(
        f"(a) gateway kill -9 ×{KILLS}, client retries",
        result,
        recover,
        f"{resent} resends, {twice} events on the topic twice; control (dedup off): "
        f"{len(without_dedup.differences)} window differences, {twice} events counted twice",
    )
    assert result.exact, result.describe()
    assert twice > 0, f"the control should count the duplicates: {without_dedup.describe()}"
    assert without_dedup.missing == without_dedup.duplicates == 0  # the raw table is exact either way
