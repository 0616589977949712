"""(b) Dataflow kill -9 ×2 under load: it resumes from its recovery snapshot (offsets and window
state, 1 s epochs) and replays what followed; dedup tokens and versioned window rows absorb the
replay. (The negative control of the snapshot itself, ``EVENTPULSE_STREAM_SNAPSHOT_WINDOWS=false``,
is `tests/flows/test_flow_recovery.py`'s.)"""

import uuid
from pathlib import Path

import pytest

from eventpulse.config.broker import BrokerSettings
from eventpulse.config.warehouse import WarehouseSettings
from tests.support.faults import Pipeline
from tests.support.load import LoadDriver

pytestmark = [pytest.mark.integration, pytest.mark.faults]

KILLS = 2
PER_PHASE = 400


def test_flow_kill_9_twice_under_load(
    broker_settings: BrokerSettings, warehouse: WarehouseSettings, tmp_path: Path, record
) -> None:
    pipeline = Pipeline(tmp_path, broker_settings, warehouse)
    try:
        pipeline.start_flow()
        pipeline.start_gateway()
        load = LoadDriver(pipeline.url, [pipeline.key("acme"), pipeline.key("initech")], run=f"b{uuid.uuid4().hex[:6]}")
        with load:
            for _ in range(KILLS):
                load.wait_for(len(load.acknowledged) + PER_PHASE)
                pipeline.kill(pipeline.flow)
                pipeline.start_flow()  # the same recovery store
            load.wait_for(len(load.acknowledged) + PER_PHASE)
        result = pipeline.check(load)
        recover = pipeline.recovery_s(load)
    finally:
        pipeline.close()
    record(f"(b) flow kill -9 ×{KILLS}", result, recover, "resumed from the recovery store each time")
    assert load.stats.gave_up == 0
    assert result.exact, result.describe()
