"""(d) Broker kill -9 and restart under load, on both storages. Before the kill the flow is paused
(SIGSTOP) for a moment, so the broker alone holds a backlog of acknowledged events, as it does for any
lagging consumer.

Durable storage (``s3``: Tansu's S3 engine on the local object store, the default): nothing
acknowledged is lost; the flow resumes where it was, same topic incarnation, and the warehouse is exact.

Memory storage: the restarted broker has an empty log, so whatever it held that the flow had not
read yet is gone. That loss must be detected and reported,
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
from tests.support.faults import Pipeline
from tests.support.load import LoadDriver
from tests.support.services import broker_processes

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


@pytest.mark.parametrize("storage", ["s3", "memory"])
def test_broker_kill_9_and_restart(storage: str, warehouse: WarehouseSettings, tmp_path: Path, record) -> None:
    with broker_processes(tmp_path, storage=storage) as processes:
        broker = BrokerSettings(bootstrap=processes.bootstrap, partitions=4)
        pipeline = Pipeline(tmp_path, broker, warehouse)
        try:
            pipeline.start_flow()
            pipeline.start_gateway()
            keys = [pipeline.key("acme"), pipeline.key("hooli")]
            load = LoadDriver(pipeline.url, keys, run=f"d{uuid.uuid4().hex[:6]}")
            with load:
                load.wait_for(500)
                pipeline.wait_stored(load)  # the flow is running and has a position to lose
                os.killpg(pipeline.flow.pid, signal.SIGSTOP)  # a lagging flow: the broker alone holds what follows
                load.wait_for(len(load.acknowledged) + 300)
                pipeline.faults.append(time.time())
                processes.kill_broker()
                killed_at = pipeline.faults[-1]
                processes.start_broker()
                os.killpg(pipeline.flow.pid, signal.SIGCONT)
                load.wait_for(len(load.acknowledged) + 500)
            after = set(load.acknowledged_after(killed_at))
            if storage == "s3":
                result = pipeline.check(load)
            else:
                result = pipeline.check(load, 60, lambda r: not (r.missing_ids & after or r.differences))
            recover = pipeline.recovery_s(load)
            incidents = _incidents(pipeline, broker.events_topic)
            deadline = time.monotonic() + 15
            while storage == "memory" and not incidents.get("offset_resets_total"):
                assert time.monotonic() < deadline, incidents
                time.sleep(0.5)
                incidents = _incidents(pipeline, broker.events_topic)
        finally:
            pipeline.close()
    assert load.stats.gave_up == 0
    reported = ", ".join(f"{k} {v}" for k, v in sorted(incidents.items()))
    if storage == "s3":
        record("(d) broker kill -9, restart — durable (s3) storage", result, recover, f"incidents: {reported}")
        assert result.exact, result.describe()
        assert not incidents.get("offset_resets_total"), incidents  # same log, same positions: nothing to reset
        return
    lost = result.missing
    record(
        "(d) broker kill -9, restart — memory storage",
        result,
        recover,
        f"{lost} lost (acknowledged, unread by the paused flow) and reported: incidents {reported}",
    )
    assert lost > 0  # memory storage loses the unread backlog ...
    assert sum(v for k, v in incidents.items() if k != "offset_resets_total") > 0  # ... and says so
    assert incidents["offset_resets_total"] > 0
    assert result.duplicates == result.unexpected == 0 and not result.differences, result.describe()
    missing_after = result.missing_ids & after
    assert not missing_after, (
        f"{len(missing_after)} events acknowledged after the restart are missing: the flow stalled"
    )
