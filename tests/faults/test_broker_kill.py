"""(d) Broker kill -9 and restart under load.

Memory storage (Tansu's default): the restarted broker has an empty log, so whatever it held that
the flow had not read yet is gone. The flow is paused (SIGSTOP) for a moment before the kill, so
there is such a backlog, as with any lagging consumer. That loss must be detected and reported,
never silent: the flow's resumed position lies past the new log's end (and the topic id changed),
so it resets, writes a ``pipeline_incidents`` row and counts ``offset_resets``; and it goes on:
everything acknowledged after the restart is stored exactly once and the windows equal the batch
recompute of what is stored.
"""

import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from eventpulse.config.broker import BrokerSettings
from eventpulse.config.warehouse import WarehouseSettings
from tests.support.faults import Pipeline, kill_group, start_broker
from tests.support.load import LoadDriver
from tests.support.services import free_port

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def _incidents(pipeline: Pipeline, topic: str) -> dict[str, int]:
    client = pipeline.client()
    try:
        rows = client.query(
            "SELECT kind, count() FROM pipeline_incidents FINAL WHERE topic = {t:String} GROUP BY kind",
            parameters={"t": topic},
        ).result_rows
        resets = client.query(
            "SELECT sum(v) FROM (SELECT label, max(value) AS v FROM pipeline_metrics"
            " WHERE metric = 'offset_resets_total' GROUP BY label)"
        ).result_rows[0][0]
    finally:
        client.close()
    return {**dict(rows), "offset_resets_total": int(resets or 0)}


def test_broker_kill_9_and_restart_memory_storage_loss_is_reported(
    warehouse: WarehouseSettings, tmp_path: Path, record
) -> None:
    port, log = free_port(), tmp_path / "broker.log"
    broker_proc = start_broker(port, log)
    broker = BrokerSettings(bootstrap=f"127.0.0.1:{port}", partitions=4)
    pipeline = Pipeline(tmp_path, broker, warehouse)
    try:
        pipeline.start_flow()
        pipeline.start_gateway()
        load = LoadDriver(pipeline.url, [pipeline.key("acme"), pipeline.key("hooli")], run=f"d{uuid.uuid4().hex[:6]}")
        with load:
            load.wait_for(800)
            pipeline.wait_stored(load)  # the flow is running and has a position to lose
            os.killpg(pipeline.flow.pid, signal.SIGSTOP)  # a lagging flow: the broker alone holds what follows
            load.wait_for(len(load.acknowledged) + 400)
            pipeline.kill(broker_proc)
            killed_at = pipeline.faults[-1]
            broker_proc = start_broker(port, log)
            os.killpg(pipeline.flow.pid, signal.SIGCONT)
            load.wait_for(len(load.acknowledged) + 800)
        after = set(load.acknowledged_after(killed_at))
        result = pipeline.check(load, 60, lambda r: not (r.missing_ids & after or r.differences))
        recover = pipeline.recovery_s(load)
        deadline = time.monotonic() + 15
        while not (incidents := _incidents(pipeline, broker.events_topic)).get("offset_resets_total"):
            assert time.monotonic() < deadline, incidents
            time.sleep(0.5)
    finally:
        pipeline.close()
        kill_group(broker_proc)
    lost = result.missing
    record(
        "(d) broker kill -9, restart — memory storage",
        result,
        recover,
        f"{lost} lost (acknowledged, unread by the paused flow) and reported: incidents "
        + ", ".join(f"{k} {v}" for k, v in sorted(incidents.items())),
    )
    assert load.stats.gave_up == 0
    assert lost > 0  # memory storage loses the unread backlog ...
    assert sum(v for k, v in incidents.items() if k != "offset_resets_total") > 0  # ... and says so
    assert result.duplicates == result.unexpected == 0 and not result.differences, result.describe()
    missing_after = result.missing_ids & after
    assert not missing_after, f"{len(missing_after)} events acknowledged after the restart are missing: the flow stalled"
