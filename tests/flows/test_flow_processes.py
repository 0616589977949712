"""Several Bytewax processes share the load and give one process's results.

Two processes (``-i/-a``, one worker each) read a 4-partition topic: raw events are written by the
process that read them (each process's sink partition), only the window step routes by key, and the
warehouse ends up as after one process, equal to the batch recompute. The negative control runs the
same two processes with the single sink partition of before (``EVENTPULSE_STREAM_SINK_PARTS=single``):
one process then writes every row. Resuming works across a change of process count and from a
recovery store written with the single partition.
"""

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devstack.traffic.generator import EventFactory, TrafficProfile
from eventpulse.aggregation.compare import compare_rows
from eventpulse.aggregation.reconcile import reconcile, stream_rows
from eventpulse.aggregation.spec import window_specs
from eventpulse.config.broker import BrokerSettings
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.client import create_client
from eventpulse.warehouse.schema import migrate
from tests.support.pipeline import init_recovery, produce, run_flow_cluster_until_drained, run_flow_until_drained

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAMILIES = window_specs((10, 60), ((300, 60),))
EVERYTHING = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
ENV = {"EVENTPULSE_STREAM_KEY_BUCKETS": "2", "EVENTPULSE_STREAM_BATCH_SIZE": "2000"}


def _database(warehouse_url: str) -> WarehouseSettings:
    settings = WarehouseSettings(url=warehouse_url, database=f"t_{uuid.uuid4().hex[:12]}")
    migrate(settings)
    return settings


def _messages(seed: int, n: int, start_ms: int) -> list:
    return list(EventFactory(TrafficProfile(), seed=seed).messages(n, start_ms, rate_per_s=2_000))


def _windows(settings: WarehouseSettings) -> list[dict]:
    client = create_client(settings, role="admin")
    try:
        return [row for w in FAMILIES for row in stream_rows(client, w, *EVERYTHING)]
    finally:
        client.close()


def _check(settings: WarehouseSettings, valid: int) -> dict[str, float]:
    """Every valid event once, windows equal to the batch recompute; the rows each process wrote."""
    client = create_client(settings, role="admin")
    try:
        assert client.query("SELECT count(), uniqExact(id) FROM events FINAL").result_rows[0] == (valid, valid)
        differences = reconcile(client, FAMILIES, *EVERYTHING)
        assert not differences, [d.as_dict() for d in differences[:5]]
        rows = client.query(
            "SELECT process, max(value) FROM pipeline_metrics WHERE metric = 'events_out_total' GROUP BY process"
        ).result_rows
        return {process: value for process, value in rows}
    finally:
        client.close()


def test_two_processes_write_their_own_rows_and_give_one_process_results(
    broker_settings: BrokerSettings, warehouse_url: str, tmp_path: Path
) -> None:
    messages = _messages(5, 40_000, int(time.time() * 1000) - 3_600_000)
    produce(broker_settings.bootstrap, broker_settings.events_topic, messages)
    valid = sum(m.valid for m in messages)
    env = {**ENV, "EVENTPULSE_STREAM_METRICS_INTERVAL_S": "0.5"}

    one = _database(warehouse_url)
    run_flow_until_drained(broker_settings, one, extra_env=env, timeout=240, log=tmp_path / "one.log")
    assert len(_check(one, valid)) == 1

    two = _database(warehouse_url)
    (tmp_path / "two").mkdir()
    run_flow_cluster_until_drained(broker_settings, two, 2, extra_env=env, timeout=240, log_dir=tmp_path / "two")
    writers = _check(two, valid)
    assert len(writers) == 2 and all(v > 0 for v in writers.values()), writers  # both processes wrote rows
    assert sum(writers.values()) == valid
    same = compare_rows(_windows(two), _windows(one))
    assert not same, [d.as_dict() for d in same[:5]]

    # Negative control: the single sink partition of before: every row is written by one process.
    single = _database(warehouse_url)
    (tmp_path / "single").mkdir()
    control_env = {**env, "EVENTPULSE_STREAM_SINK_PARTS": "single"}
    run_flow_cluster_until_drained(
        broker_settings, single, 2, extra_env=control_env, timeout=240, log_dir=tmp_path / "single"
    )
    writers = _check(single, valid)
    assert sorted(v > 0 for v in writers.values()) in ([True], [False, True]), writers


def test_a_recovery_store_resumes_with_fewer_processes_and_from_the_single_partition_layout(
    broker_settings: BrokerSettings, new_topic, warehouse_url: str, tmp_path: Path
) -> None:
    """2 processes → 1 process (the second one's sink snapshot has no owner any more), and a store of
    the single-partition layout resumed with per-process partitions: no crash, nothing lost or doubled."""
    now = int(time.time() * 1000)
    batches = [_messages(seed, 10_000, now - 7_200_000 + seed * 600_000) for seed in (1, 2, 3)]
    valid = 0

    def run(step: int, processes: int, env: dict[str, str]) -> None:
        nonlocal valid
        produce(broker.bootstrap, broker.events_topic, batches[step])
        valid += sum(m.valid for m in batches[step])
        log_dir = recovery.with_name(f"{recovery.name}-step-{step}")
        log_dir.mkdir()
        if processes == 1:
            run_flow_until_drained(
                broker, settings, extra_env=env, recovery_dir=recovery, timeout=240, log=log_dir / "flow.log"
            )
        else:
            run_flow_cluster_until_drained(
                broker, settings, processes, extra_env=env, recovery_dir=recovery, log_dir=log_dir
            )
        _check(settings, valid)

    broker = broker_settings
    settings, recovery = _database(warehouse_url), tmp_path / "recovery"
    init_recovery(recovery)
    run(0, 2, ENV)
    run(1, 1, ENV)  # fewer processes: p1's snapshot is loaded by process 0

    broker = broker_settings.model_copy(update={"events_topic": new_topic(4)})
    settings, recovery = _database(warehouse_url), tmp_path / "recovery-single"
    init_recovery(recovery)
    valid = 0
    run(0, 1, {**ENV, "EVENTPULSE_STREAM_SINK_PARTS": "single"})
    run(1, 2, ENV)  # the old layout's `all` snapshot is loaded by process 0
