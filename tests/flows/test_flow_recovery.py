"""Exactly-once effect: kill -9 the dataflow at random points, restart it from its recovery
snapshots, and the warehouse ends up exactly as after an uninterrupted run and as the batch
recomputation. The negative control (window state left out of the snapshots) must differ.
"""

import os
import random
import signal
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devstack.traffic.generator import EventFactory
from eventpulse.aggregation.compare import compare_rows
from eventpulse.aggregation.reconcile import reconcile, stream_rows
from eventpulse.aggregation.spec import window_specs
from eventpulse.config.broker import BrokerSettings
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.client import create_client
from eventpulse.warehouse.schema import migrate
from tests.support.pipeline import init_recovery, produce, run_flow_until_drained, start_flow

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N = 300_000
FAMILIES = window_specs((10, 60), ((300, 60),))
EVERYTHING = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def _database(warehouse_url: str) -> WarehouseSettings:
    settings = WarehouseSettings(url=warehouse_url, database=f"t_{uuid.uuid4().hex[:12]}")
    migrate(settings)
    return settings


def _run_with_kills(
    broker: BrokerSettings,
    warehouse: WarehouseSettings,
    recovery: Path,
    rng: random.Random,
    log: Path,
    valid: int,
    extra_env: dict[str, str] | None = None,
) -> list[float]:
    """Start, kill -9 mid-stream, three times; then run to the end. Returns the kill fractions.

    Each kill comes once the warehouse holds a random share of the events (10-30 %, 35-55 %,
    60-80 %, one draw per range), so every kill lands while the flow is processing, however fast it
    is; the killed executions tail the topic (they never end by themselves). A restart resumes
    from the last committed recovery epoch (one per second) and replays what followed.
    """
    init_recovery(recovery)
    env = {"EVENTPULSE_STREAM_BATCH_SIZE": "5000", **(extra_env or {})}
    client = create_client(warehouse, role="admin")
    kills: list[float] = []
    try:
        for low, high in ((0.1, 0.3), (0.35, 0.55), (0.6, 0.8)):
            target = int(valid * rng.uniform(low, high))
            proc = start_flow(broker, warehouse, tail=True, recovery_dir=recovery, extra_env=env, log=log)
            started = time.monotonic()
            while (seen := client.query("SELECT uniqExact(id) FROM events").result_rows[0][0]) < target:
                assert proc.poll() is None, f"the flow ended early:\n{log.read_text()[-3000:]}"
                assert time.monotonic() - started < 120, "no progress"
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            assert seen < valid, "the kill came after the flow had written everything"
            kills.append(round(seen / valid, 2))
    finally:
        client.close()
    run_flow_until_drained(broker, warehouse, recovery_dir=recovery, extra_env=env, timeout=240, log=log)
    return kills


def _final_rows(settings: WarehouseSettings) -> list[dict]:
    client = create_client(settings, role="admin")
    try:
        return [row for w in FAMILIES for row in stream_rows(client, w, *EVERYTHING)]
    finally:
        client.close()


def test_kill9_recovery_is_exactly_once(broker_settings: BrokerSettings, warehouse_url: str, tmp_path: Path) -> None:
    messages = list(EventFactory(seed=11).messages(N, int(time.time() * 1000) - 7_200_000, rate_per_s=20_000))
    produce(broker_settings.bootstrap, broker_settings.events_topic, messages)
    valid = sum(m.valid for m in messages)

    clean = _database(warehouse_url)
    took = run_flow_until_drained(broker_settings, clean, timeout=240, log=tmp_path / "clean.log")

    killed = _database(warehouse_url)
    kills = _run_with_kills(
        broker_settings, killed, tmp_path / "recovery", random.Random(20261102), tmp_path / "killed.log", valid
    )
    print(f"uninterrupted run {took:.1f}s, killed with {kills} of the events written")

    client = create_client(killed, role="admin")
    try:
        assert client.query("SELECT count(), uniqExact(id) FROM events FINAL").result_rows[0] == (valid, valid)
        differences = reconcile(client, FAMILIES, *EVERYTHING)
        assert not differences, [d.as_dict() for d in differences[:10]]
        provisional = client.query("SELECT count() FROM window_aggregates FINAL WHERE is_final = 0").result_rows
        assert provisional == [(0,)]
    finally:
        client.close()
    same = compare_rows(_final_rows(killed), _final_rows(clean))
    assert not same, [d.as_dict() for d in same[:10]]

    # Negative control: offsets recover but window state does not -> windows lose events. (With
    # seeding from the warehouse on, a restart without window state reads the windows' earlier
    # events back from the raw table, so the control turns that off too.)
    control = _database(warehouse_url)
    _run_with_kills(
        broker_settings,
        control,
        tmp_path / "recovery-control",
        random.Random(7),
        tmp_path / "control.log",
        valid,
        extra_env={"EVENTPULSE_STREAM_SNAPSHOT_WINDOWS": "false", "EVENTPULSE_STREAM_SEED_FROM_WAREHOUSE": "false"},
    )
    client = create_client(control, role="admin")
    try:
        assert client.query("SELECT count() FROM events FINAL").result_rows[0][0] == valid  # raw is idempotent
        assert reconcile(client, FAMILIES, *EVERYTHING), "the negative control should have lost window state"
    finally:
        client.close()
    assert compare_rows(_final_rows(control), _final_rows(clean))
