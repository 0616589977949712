"""(e) The events topic deleted and created again under load (offsets start from 0 again).

Before the topic goes, the flow has stored everything acknowledged (deleting a topic deletes what
nobody read: that is the operator's act, not the pipeline's loss) and is stopped (kill -9): a flow
that is running when its topic is deleted dies of a segfault in librdkafka, the last test here. It
is started again from its recovery store, whose positions name the old incarnation. Each incarnation starts with one
batch of the same size, so the new log's first insert covers the same offsets as the old log's first
insert: its dedup token must name the incarnation (issue 12 item 1), or the warehouse drops it as a
retry. Negative control: ``EVENTPULSE_STREAM_TOKEN_INCARNATION=false`` loses that batch.
"""

import time
import uuid
from pathlib import Path

import pytest

from eventpulse.broker.admin import admin_client
from eventpulse.config.broker import BrokerSettings
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.schema import migrate
from tests.flows.test_topic_incarnations import recreate_topic
from tests.support.faults import Exactness, Pipeline
from tests.support.load import LoadDriver

pytestmark = [pytest.mark.integration, pytest.mark.faults]

FIRST = 10  # events in each incarnation's first batch
PER_PHASE = 400


def _query(pipeline: Pipeline, sql: str) -> int:
    client = pipeline.client()
    try:
        return client.query(sql, parameters={"t": pipeline.broker.events_topic}).result_rows[0][0]
    finally:
        client.close()


def _crashed(pipeline: Pipeline, within_s: float = 3.0) -> int | None:
    """The flow's exit status if it died within ``within_s`` seconds (else None: still running)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if (status := pipeline.flow.poll()) is not None:
            return status
        time.sleep(0.1)
    return None


def _scenario(broker_bootstrap: str, warehouse_url: str, workdir: Path, env: dict[str, str], control: bool = False):
    """Run both incarnations; return (exactness, recovery s, the new log's first batch, incarnations seen)."""
    workdir.mkdir()
    topic = f"events-{uuid.uuid4().hex[:10]}"
    broker = BrokerSettings(
        bootstrap=broker_bootstrap, events_topic=topic, dead_letter_topic=f"{topic}.dl", partitions=1
    )
    admin = admin_client(broker)
    recreate_topic(admin, topic, 1)
    warehouse = WarehouseSettings(url=warehouse_url, database=f"t_{uuid.uuid4().hex[:12]}")
    migrate(warehouse)
    pipeline = Pipeline(workdir, broker, warehouse, flow_env=env)
    try:
        pipeline.start_flow()
        pipeline.start_gateway()
        load = LoadDriver(pipeline.url, [pipeline.key("acme")], run=f"e{uuid.uuid4().hex[:6]}", rate_per_s=800)
        load.send_now(FIRST)
        pipeline.wait_stored(load)
        load.start()
        load.wait_for(len(load.acknowledged) + PER_PHASE)
        load.pause()
        time.sleep(0.5)  # batches in flight are answered
        pipeline.wait_stored(load)

        time.sleep(2.0)  # the epochs holding all of it are committed (1 s snapshots)
        pipeline.kill(pipeline.flow)  # a running flow would die on the deletion: see the last test
        recreate_topic(admin, topic, 1)
        pipeline.start_flow()  # from its recovery store: positions in the old incarnation
        first = set(load.send_now(FIRST))
        deadline = time.monotonic() + 30
        incidents = "SELECT count() FROM pipeline_incidents FINAL WHERE topic = {t:String}"
        while not _query(pipeline, incidents):  # the flow noticed the new incarnation and reset
            assert time.monotonic() < deadline, "the flow never reported the recreated topic"
            time.sleep(0.2)
        time.sleep(1.0)  # the new log's first batch is read (and inserted) alone
        load.resume()
        load.wait_for(len(load.acknowledged) + PER_PHASE)
        load.stop()
        last = max(load.acknowledged)  # one partition: stored in order, so this one is stored last
        result: Exactness = pipeline.check(load, 60, lambda r: r.exact or last not in r.missing_ids)
        if not result.exact:  # the raw events are all in (the control's are not): let the windows follow
            result = pipeline.check(load, 10 if control else 60)
        recover = pipeline.recovery_s(load)
        seen = _query(pipeline, "SELECT uniqExact(incarnation) FROM topic_incarnations WHERE topic = {t:String}")
    finally:
        pipeline.close()
    return result, recover, first, seen


def test_topic_recreated_under_load_loses_nothing(broker_bootstrap: str, warehouse_url: str, tmp_path: Path, record):
    result, recover, _, seen = _scenario(broker_bootstrap, warehouse_url, tmp_path / "exact", {})
    control, _, first, _ = _scenario(
        broker_bootstrap,
        warehouse_url,
        tmp_path / "control",
        {"EVENTPULSE_STREAM_TOKEN_INCARNATION": "false"},
        control=True,
    )
    record(
        "(e) topic recreated under load",
        result,
        recover,
        f"flow stopped while the topic was recreated; {seen} incarnations; control (token without"
        f" incarnation): {control.missing} lost",
    )
    assert result.exact, result.describe()
    assert seen == 2
    assert control.missing > 0 and first <= control.missing_ids, control.describe()


def test_the_running_flow_survives_its_topic_being_deleted(broker_bootstrap: str, warehouse_url: str, tmp_path: Path):
    """A bug this suite found: deleting the topic under a running flow kills it with SIGSEGV inside
    librdkafka (confluent-kafka 2.16.1: ``rd_kafka_metadata_cache_find`` → ``strcmp`` on the metadata
    update that follows the deletion on Tansu; a bare ``Consumer.consume()`` on an assigned partition
    crashes the same way). A supervised flow (``eventpulse up``, Kubernetes) restarts and recovers, as
    `test_topic_recreated_under_load_loses_nothing` shows; an unsupervised one is gone."""
    topic = f"events-{uuid.uuid4().hex[:10]}"
    broker = BrokerSettings(bootstrap=broker_bootstrap, events_topic=topic, dead_letter_topic=f"{topic}.dl")
    admin = admin_client(broker)
    recreate_topic(admin, topic, 1)
    warehouse = WarehouseSettings(url=warehouse_url, database=f"t_{uuid.uuid4().hex[:12]}")
    migrate(warehouse)
    pipeline = Pipeline(tmp_path, broker, warehouse)
    try:
        pipeline.start_flow()
        time.sleep(6)  # started and reading
        assert pipeline.flow.poll() is None
        recreate_topic(admin, topic, 1)
        status = _crashed(pipeline, 5.0)
    finally:
        pipeline.close()
    if status is not None:
        pytest.xfail(f"the flow died with status {status} when its topic was deleted (librdkafka SIGSEGV)")
