"""`eventpulse up` under faults, one chain of three stacks (each `eventpulse up` costs ~10 s to start):

1. (g) kill -9 of the gateway, the flow and the broker under load: the supervisor restarts each.
2. (h) SIGKILL of `eventpulse up`: every process gone, every port free; then
3. (f) the next `eventpulse up` on the same ports and the same warehouse, with a fresh data directory (a
   fresh broker log, offsets from 0 again, and a fresh recovery store, no window state), its events timed
   in the first stack's last 20 s, in the windows it wrote: every count stays right.
4. The negative control of (f): the same second stack on a copy of the warehouse with
   ``EVENTPULSE_STREAM_SEED_FROM_WAREHOUSE=false`` overwrites those windows with fewer events.

The stacks run the broker on its default durable storage, the gateway, the flow and the warehouse
server (no Dagster, no dashboard).
"""

import shutil
import time
import uuid
from pathlib import Path

import pytest

from devstack.ports import port_is_free
from devstack.process import group_members
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


def _sigkill(up: Up) -> tuple[int, float]:
    """SIGKILL `eventpulse up`; wait until its services are gone and its ports free: (processes, seconds)."""
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
    return len(members), time.monotonic() - killed


def _second_up(
    tmp: Path, first: Up, warehouse: Path, name: str, keys: list[str], env: dict[str, str], times: tuple[float, float]
):
    """A fresh-data-dir `eventpulse up` on ``warehouse`` and ``first``'s ports, its events timed in ``times``
    (inside the first stack's windows); (load, up, seconds to ready)."""
    up = Up(tmp, tmp / f"data-{name}", warehouse, env, ports=first.ports)
    started = time.monotonic()
    up.start()
    ready_s = time.monotonic() - started
    load = LoadDriver(up.url, keys, run=_run(name), time_range=times)
    with load:
        load.wait_for(800)
    return load, up, ready_s


def test_crashed_services_sigkill_of_up_and_a_second_up_on_one_warehouse(tmp_path: Path, record) -> None:
    warehouse = tmp_path / "warehouse"
    up = Up(tmp_path, tmp_path / "data-1", warehouse)
    second = control_up = None
    try:
        up.start()
        keys = [up.key("acme"), up.key("umbrella")]
        load = LoadDriver(up.url, keys, run=_run("g"))
        down: dict[str, float] = {}
        with load:
            load.wait_for(600)
            for service in CRASHED:
                before = {k: v for k, v in up.pids().items() if k != service}
                down[service] = up.crash(service)
                assert {k: v for k, v in up.pids().items() if k != service} == before  # the others kept running
                load.wait_for(len(load.acknowledged) + 300)
        crashed = up.check(load)
        record(
            "(g) gateway, flow, broker kill -9 under `eventpulse up`",
            crashed,
            up.recovery_s(load),
            "restarted by the supervisor in " + ", ".join(f"{k} {v:.1f} s" for k, v in down.items()),
        )
        assert load.stats.gave_up == 0
        # Checked at the end, so that (h) and (f) still run (and are reported) when (g) fails.
        failures = [] if crashed.exact else [f"(g) {crashed.describe()}"]

        processes, gone_s = _sigkill(up)
        shutil.copytree(
            warehouse, tmp_path / "warehouse-control", symlinks=True
        )  # for the control, as the first stack left it

        last = max(load.acknowledged.values())
        times = (last - 20, last)  # the first stack's last 20 s: within the allowed lateness of a fresh flow
        again, second, ready_s = _second_up(tmp_path, up, warehouse, "f", keys, {}, times)
        result = second.check(again)
        # The first stack's events and windows too (as (g) left them: what it missed stays missed).
        kept = second.check(load, 10, lambda r: r.missing_ids == crashed.missing_ids and not r.differences)
        record(
            "(h) `eventpulse up` SIGKILLed; (f) a second `up` on its warehouse",
            result,
            None,
            f"{processes} processes gone, {len(up.ports)} ports free {gone_s:.1f} s after SIGKILL; next `up` (fresh"
            f" broker log and recovery store) ready in {ready_s:.1f} s; first stack's rows unchanged:"
            f" {kept.missing_ids == crashed.missing_ids and not kept.differences and not kept.duplicates}",
        )
        if not result.exact:
            failures.append(f"(f) {result.describe()}")
        if kept.missing_ids != crashed.missing_ids or kept.differences or kept.duplicates:
            failures.append(f"(f) the first stack's rows changed: {kept.describe()}")
        assert second.stop() == 0

        control_env = {"EVENTPULSE_STREAM_SEED_FROM_WAREHOUSE": "false"}
        ctl, control_up, _ = _second_up(tmp_path, up, tmp_path / "warehouse-control", "c", keys, control_env, times)
        control_up.check(ctl, 30, lambda r: r.missing == 0)  # the raw events are in ...
        time.sleep(3)  # ... and the windows emitted (every 1 s) since
        control = control_up.check(ctl, timeout=0)
    finally:
        for stack in (up, second, control_up):
            if stack is not None:
                stack.kill()
    under = [d for d in control.differences if d.metric == "event_count" and d.left < d.right]
    record(
        "(f) control: second `up` without seeding",
        control,
        None,
        f"{len(under)} windows under-counted (EVENTPULSE_STREAM_SEED_FROM_WAREHOUSE=false)",
    )
    assert control.missing == 0 and under, control.describe()  # raw exact, windows overwritten with fewer events
    assert not failures, failures
