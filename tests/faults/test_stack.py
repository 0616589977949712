"""`eventpulse up` under faults: (g) crashed services, (h) `eventpulse up` killed with SIGKILL, then
started again on the same data directory, and (f) a second `eventpulse up` on one warehouse.

The stacks run the broker on its default durable storage, the gateway, the flow and the warehouse
server (no Dagster, no dashboard), on free ports.
"""

import time
import uuid
from pathlib import Path

import pytest

from eventpulse.stack.ports import port_is_free
from eventpulse.stack.process import group_members
from tests.support.faults import Up
from tests.support.load import LoadDriver

pytestmark = [pytest.mark.integration, pytest.mark.faults]

CRASHED = ("gateway", "flow", "broker")


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _run(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def test_crashed_services_then_sigkill_of_up_then_up_again(tmp_path: Path, record) -> None:
    data = tmp_path / "data"
    up = Up(tmp_path, data, data / "warehouse")
    try:
        up.start()
        keys = [up.key("acme"), up.key("umbrella")]
        # (g) kill -9 of a service under load: the supervisor restarts it, the others keep running.
        load = LoadDriver(up.url, keys, run=_run("g"))
        down: dict[str, float] = {}
        with load:
            load.wait_for(600)
            for service in CRASHED:
                before = {k: v for k, v in up.pids().items() if k != service}
                down[service] = up.crash(service)
                assert {k: v for k, v in up.pids().items() if k != service} == before  # the others kept running
                load.wait_for(len(load.acknowledged) + 400)
        crashed = up.check(load)
        record(
            "(g) gateway, flow, broker kill -9 under `eventpulse up`",
            crashed,
            up.recovery_s(load),
            "restarted by the supervisor in " + ", ".join(f"{k} {v:.1f} s" for k, v in down.items()),
        )
        assert load.stats.gave_up == 0
        assert crashed.exact, crashed.describe()

        # (h) SIGKILL of `eventpulse up`: every service goes with it and no port stays bound.
        groups = {name: pgid for name, pgid in up.pids().items() if name != "migrate"}
        members = [pid for pgid in groups.values() for pid in group_members(pgid)]
        assert len(members) >= len(groups) + 1  # Tansu under the broker wrapper
        killed = time.monotonic()
        up.proc.kill()
        up.proc.wait()
        deadline = killed + 20
        while any(_alive(p) for p in members) or not all(port_is_free("127.0.0.1", p) for p in up.ports.values()):
            assert time.monotonic() < deadline, [p for p in members if _alive(p)]
            time.sleep(0.1)
        gone_s = time.monotonic() - killed

        # ... and the next `eventpulse up` on the same ports and data directory works and counts right.
        started = time.monotonic()
        up.start()
        restart_s = time.monotonic() - started
        again = LoadDriver(up.url, keys, run=_run("h"))
        with again:
            again.wait_for(1000)
        after = up.check(again)
        kept = up.check(load, timeout=10)  # what the first run stored is still exact
        record(
            "(h) `eventpulse up` SIGKILLed, then `up` again",
            after,
            None,
            f"{len(members)} processes gone, {len(up.ports)} ports free {gone_s:.1f} s after SIGKILL; next `up`"
            f" ready in {restart_s:.1f} s; first run still exact: {kept.exact}",
        )
        assert after.exact, after.describe()
        assert kept.exact, kept.describe()
        assert up.stop() == 0
    finally:
        up.kill()


def _two_ups(tmp: Path, env: dict[str, str]) -> tuple[LoadDriver, Up]:
    """Two `eventpulse up` runs, one after the other, on one warehouse; each with a fresh data directory
    (a fresh broker log: offsets from 0 again, and a fresh recovery store: no window state). The
    second run's events lie up to 30 s in the past, in the windows the first run wrote."""
    tmp.mkdir(parents=True)
    warehouse = tmp / "warehouse"
    first = Up(tmp, tmp / "data-1", warehouse, env)
    try:
        first.start()
        load = LoadDriver(first.url, [first.key("acme"), first.key("umbrella")], run=_run("f"))
        with load:
            load.wait_for(800)
        assert first.check(load).exact
    finally:
        first.stop()
        first.kill()
    second = Up(tmp, tmp / "data-2", warehouse, env, ports=first.ports)  # same ports, same keys
    second.start()
    load._lag = (0.0, 30.0)
    with load:
        load.wait_for(len(load.acknowledged) + 800)
    return load, second


def test_a_second_up_on_one_warehouse_keeps_every_count(tmp_path: Path, record) -> None:
    load, up = _two_ups(tmp_path / "exact", {})
    try:
        result = up.check(load)
    finally:
        up.stop()
        up.kill()
    load, up = _two_ups(tmp_path / "control", {"EVENTPULSE_STREAM_SEED_FROM_WAREHOUSE": "false"})
    try:
        control = up.check(load, timeout=15)
    finally:
        up.stop()
        up.kill()
    under = [d for d in control.differences if d.metric == "event_count" and d.left < d.right]
    record(
        "(f) `eventpulse up` twice on one warehouse (fresh broker + recovery store)",
        result,
        None,
        f"control (no seeding): {len(control.differences)} window differences, {len(under)} windows under-counted",
    )
    assert result.exact, result.describe()
    assert control.missing == 0 and under, control.describe()  # raw exact, windows overwritten with fewer events
