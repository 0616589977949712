"""Issue 12 items 2 and 3 on the real broker and warehouse: the windows count each event once, as the
raw table does, and a second run without window state (a second ``eventpulse up`` on the same
warehouse) leaves every window equal to the batch recompute. Each fix has its negative control.
"""

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devstack.traffic.generator import EventFactory, GeneratedMessage
from eventpulse.aggregation.reconcile import reconcile
from eventpulse.aggregation.spec import window_specs
from eventpulse.config.broker import BrokerSettings
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.client import create_client
from eventpulse.warehouse.schema import migrate
from tests.support.pipeline import init_recovery, produce, run_flow_until_drained

pytestmark = pytest.mark.integration

FAMILIES = window_specs((10, 60), ((300, 60),))
EVERYTHING = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def _database(warehouse_url: str) -> WarehouseSettings:
    settings = WarehouseSettings(url=warehouse_url, database=f"t_{uuid.uuid4().hex[:12]}")
    migrate(settings)
    return settings


def _check(settings: WarehouseSettings, valid: int) -> tuple[int, list]:
    """(raw events FINAL, differences between window_aggregates FINAL and the batch recompute)."""
    client = create_client(settings, role="admin")
    try:
        raw = client.query("SELECT count() FROM events FINAL").result_rows[0][0]
        assert raw == valid
        return raw, reconcile(client, FAMILIES, *EVERYTHING)
    finally:
        client.close()


def _duplicates(settings: WarehouseSettings) -> float:
    client = create_client(settings, role="admin")
    try:
        rows = client.query(
            "SELECT max(value) FROM pipeline_metrics WHERE metric = 'duplicates_dropped_total'"
        ).result_rows
        return rows[0][0] or 0
    finally:
        client.close()


def test_the_same_ids_twice_on_the_topic_count_once(
    broker_settings: BrokerSettings, warehouse_url: str, tmp_path: Path
) -> None:
    """Every message is produced twice (a gateway retrying after its ack was lost)."""
    messages = list(EventFactory(seed=21).messages(4_000, int(time.time() * 1000) - 3_600_000, rate_per_s=4_000))
    produce(broker_settings.bootstrap, broker_settings.events_topic, messages)
    produce(broker_settings.bootstrap, broker_settings.events_topic, messages)
    valid = sum(m.valid for m in messages)
    env = {"EVENTPULSE_STREAM_BATCH_SIZE": "1000", "EVENTPULSE_STREAM_METRICS_INTERVAL_S": "0.2"}

    exact = _database(warehouse_url)
    run_flow_until_drained(broker_settings, exact, extra_env=env, timeout=180, log=tmp_path / "dedup.log")
    raw, differences = _check(exact, valid)
    assert not differences, [d.as_dict() for d in differences[:10]]
    assert _duplicates(exact) == valid

    # Negative control: the same run without the dedup counts every duplicate.
    control = _database(warehouse_url)
    run_flow_until_drained(
        broker_settings,
        control,
        extra_env={**env, "EVENTPULSE_STREAM_DEDUP": "false"},
        timeout=180,
        log=tmp_path / "control.log",
    )
    _, differences = _check(control, valid)
    counts = [d for d in differences if d.metric == "event_count"]
    assert counts and all(d.left > d.right for d in counts), [d.as_dict() for d in differences[:10]]
    client = create_client(control, role="admin")
    try:
        tenant_rows = "SELECT sum(event_count) FROM window_aggregates FINAL WHERE window_seconds = 60 AND type = '*' AND source = '*'"
        assert client.query(tenant_rows).result_rows[0][0] == 2 * raw  # the 3,010 -> 6,010
    finally:
        client.close()


def _two_runs(
    broker_bootstrap: str,
    topics: tuple[str, str],
    runs: tuple[list[GeneratedMessage], list[GeneratedMessage]],
    settings: WarehouseSettings,
    tmp_path: Path,
    env: dict[str, str],
) -> None:
    """Run the flow twice on ``settings``, each time on its own fresh topic and fresh recovery store
    (what a second ``eventpulse up`` with its fresh in-memory broker does)."""
    for n, (topic, messages) in enumerate(zip(topics, runs, strict=True)):
        produce(broker_bootstrap, topic, messages)
        recovery = tmp_path / f"{settings.database}-recovery-{n}"
        init_recovery(recovery)
        broker = BrokerSettings(bootstrap=broker_bootstrap, events_topic=topic, dead_letter_topic=f"{topic}.dl")
        log = tmp_path / f"{settings.database}-run-{n}.log"
        run_flow_until_drained(broker, settings, recovery_dir=recovery, extra_env=env, timeout=180, log=log)


def test_a_second_run_without_window_state_keeps_every_window_exact(
    broker_bootstrap: str, new_topic, warehouse_url: str, tmp_path: Path
) -> None:
    """Run 1 and run 2 have alternate events of the same 2 minutes, so run 2's events fall into the
    windows run 1 wrote; run 2 also carries 200 of run 1's events again (retries across the restart)."""
    messages = list(EventFactory(seed=22).messages(6_000, int(time.time() * 1000) - 3_600_000, rate_per_s=50))
    valid = sum(m.valid for m in messages)
    first, second = messages[0::2], messages[1::2]
    second = second + [m for m in first if m.valid][:200]
    env = {"EVENTPULSE_STREAM_BATCH_SIZE": "1000", "EVENTPULSE_STREAM_METRICS_INTERVAL_S": "0.2"}

    exact = _database(warehouse_url)
    _two_runs(broker_bootstrap, (new_topic(4), new_topic(4)), (first, second), exact, tmp_path, env)
    _, differences = _check(exact, valid)
    assert not differences, [d.as_dict() for d in differences[:10]]

    # Negative control: without seeding, run 2 overwrites the windows with its own events only.
    control = _database(warehouse_url)
    control_env = {**env, "EVENTPULSE_STREAM_SEED_FROM_WAREHOUSE": "false"}
    _two_runs(broker_bootstrap, (new_topic(4), new_topic(4)), (first, second), control, tmp_path, control_env)
    _, differences = _check(control, valid)
    counts = [d for d in differences if d.metric == "event_count"]
    assert counts and all(d.left < d.right for d in counts), [d.as_dict() for d in differences[:10]]
