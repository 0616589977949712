"""`eventpulse up` with history: `eventpulse demo` as a one-shot service after the migrations."""

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devstack.stack_services import StackOptions, stack_services
from eventpulse.settings import Settings
from tests.devstack.test_up import _count
from tests.support.services import free_port

REPO = Path(__file__).resolve().parents[2]


def test_history_is_a_one_shot_after_the_migrations_only_when_asked(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    by_name = {s.name: s for s in stack_services(settings, StackOptions(history=True, traffic=True))}
    history = by_name["history"]
    assert history.oneshot and history.restart is None and history.depends_on == ["migrate"]
    # The heaviest starters wait for it (it then loads 7 days in ~30 s instead of ~70 s on 2 cores).
    assert "history" in by_name["traffic"].depends_on and "history" in by_name["dagster"].depends_on
    assert "history" not in by_name["dashboard"].depends_on
    assert list(history.argv[-3:]) == ["-m", "cli", "demo"]
    assert history.env == by_name["flow"].env  # the stack's warehouse and DAGSTER_HOME
    plain = {s.name: s for s in stack_services(settings, StackOptions(traffic=True))}
    assert "history" not in plain and "history" not in plain["traffic"].depends_on + plain["dagster"].depends_on


@pytest.mark.slow
def test_up_fills_seven_days_of_history_and_a_second_start_skips_them(tmp_path: Path) -> None:
    ports = {"BROKER": free_port(), "BROKER_STORE": free_port(), "WAREHOUSE": free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTPULSE_", "DAGSTER_"))}
    env |= {f"EVENTPULSE_{name}_PORT": str(port) for name, port in ports.items()}
    env |= {"EVENTPULSE_DATA_DIR": str(tmp_path / "data"), "EVENTPULSE_STACK_HISTORY": "true"}
    env["EVENTPULSE_STACK_HISTORY_EVENTS_PER_DAY"] = "1000"
    users_file = tmp_path / "data" / "warehouse-users.json"
    argv = [sys.executable, "-m", "cli", "up", "--without", "redis"]
    argv += ["--without", "gateway", "--without", "dagster", "--without", "dashboard"]

    def run_until_history_done(log_path: Path) -> tuple[str, float, dict[str, int]]:
        """Start the stack, wait for the history service, count what is there, stop it."""
        started = time.monotonic()
        with log_path.open("wb") as log:
            proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
            try:
                deadline = started + 240
                while time.monotonic() < deadline and "demo: done in" not in log_path.read_text():
                    assert proc.poll() is None, log_path.read_text()[-4000:]
                    time.sleep(0.5)
                took = time.monotonic() - started
                counts = (
                    _history_counts(ports["WAREHOUSE"], users_file) if "demo: done in" in log_path.read_text() else {}
                )
            finally:
                proc.send_signal(signal.SIGINT)
                code = proc.wait(60)
        output = log_path.read_text()
        assert "demo: done in" in output and code == 0, output[-4000:]
        return output, took, counts

    output, took, counts = run_until_history_done(tmp_path / "up.log")
    assert {k: v for k, v in counts.items() if k.endswith("days")} == dict.fromkeys(_TABLES, 7), output[-3000:]
    print(f"eventpulse up --history: 7 days of history ({counts['events']} events) in {took:.1f} s after start")

    again, _, counts_again = run_until_history_done(tmp_path / "up-again.log")
    assert "already filled" in again and "events loaded" not in again
    assert counts_again == counts


_TABLES = ("events days", "window_aggregates days", "rollup_hourly days", "rollup_daily days")


def _history_counts(port: int, users_file: Path) -> dict[str, int]:
    """Days present in each table of the history (before today), and the raw rows (no FINAL)."""
    today = datetime.now(UTC).date()
    counts = {"events": _count(port, "SELECT count() FROM events", users_file)}
    for name in _TABLES:
        table = name.split()[0]
        column = "timestamp" if table == "events" else "window_start"
        sql = f"SELECT uniqExact(toDate({column})) FROM {table} WHERE toDate({column}) < '{today.isoformat()}'"
        counts[name] = _count(port, sql, users_file)
    return counts
