"""The alert sensor: rules evaluated in the warehouse, episodes per rule, webhooks posted to a real
local HTTP server, INFO logs only on state changes."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from eventpulse.alert_rules import EXAMPLE_RULES, RULES_FILE_NAME, load_rules
from eventpulse.alert_state import read_episodes
from orchestration.resources import AlertingResource
from orchestration.sensors.alerts import alert_rules_sensor
from tests.orchestration.alerting.windows import insert_windows, window_row
from tests.orchestration.sensors.webhook_server import Recorder, webhook_server

RULES = """
rules:
  - name: high_error_rate
    metric: error_rate
    threshold: 0.1
    min_events: 10
  - name: slow_p99
    metric: latency_p99
    threshold: 1000
    group_by: tenant_type_source
  - name: volume_drop
    kind: volume_drop
    threshold: 0.5
    baseline_windows: 5
    min_events: 20
"""


def _alerting(tmp_path: Path, url: str) -> AlertingResource:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    return AlertingResource(rules_path=str(rules), webhook_urls=[url], attempts=4, backoff_s=0.01)


def _logged(capsys, level: str) -> list[str]:
    """Lines the sensor's Dagster log printed at ``level`` (Dagster's console handler writes to stderr)."""
    return [line for line in capsys.readouterr().err.splitlines() if f" - dagster - {level} - " in line]


def test_rules_open_one_episode_each_deliver_with_retries_and_log_only_changes(
    resources, warehouse_client, tmp_path, capsys
):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    latest = now - timedelta(minutes=2)
    rows = []
    for k in range(1, 7):  # six closed minutes, the latest last
        start = latest - timedelta(minutes=6 - k)
        rows.append(window_row("acme", start, 100, errors=30 if k >= 5 else 1))  # error spike in the last two
        rows.append(window_row("initech", start, 100, errors=30 if k >= 5 else 1))
        rows.append(window_row("quiet", start, 100 if k < 6 else 10))  # volume drop in the latest
        rows.append(window_row("fast", start, 50))
    rows.append(window_row("fast", latest, 50, p99=2500.0, type_="checkout", source="web_app"))
    insert_windows(warehouse_client, rows)

    recorder = Recorder(fail_first=2)
    capsys.readouterr()
    with webhook_server(recorder) as url:
        context_resources = {**resources, "alerting": _alerting(tmp_path, url)}
        first = alert_rules_sensor(dg.build_sensor_context(resources=context_resources))
        assert isinstance(first, dg.SkipReason) and "3 open episode(s)" in first.skip_message
        fired = {(r["body"]["rule"], tuple(r["body"]["tenants"])) for r in recorder.accepted}
        assert fired == {("high_error_rate", ("acme", "initech")), ("volume_drop", ("quiet",)), ("slow_p99", ("fast",))}
        assert len(recorder.requests) == 3 + 2  # two 503s retried
        assert len({r["key"] for r in recorder.accepted}) == 3
        info = _logged(capsys, "INFO")
        assert len(info) == 6 and sum("opened" in m for m in info) == 3  # 3 opened + 3 notified

        for _ in range(2):
            second = alert_rules_sensor(dg.build_sensor_context(resources=context_resources))
            assert "0 change(s)" in second.skip_message and ": 0 firing" not in second.skip_message  # still firing
        assert len(recorder.requests) == 5  # one notification per episode, not one per evaluation
        err = capsys.readouterr().err
        assert " - dagster - INFO - " not in err and " - dagster - WARNING - " not in err  # nothing changed

    episodes = sorted(read_episodes(warehouse_client), key=lambda e: e.rule)
    assert [(e.rule, e.series, e.notifications) for e in episodes] == [
        ("high_error_rate", ["acme", "initech"], 1),
        ("slow_p99", ["fast checkout/web_app"], 1),
        ("volume_drop", ["quiet"], 1),
    ]
    assert episodes[0].peak_value == 0.3 and episodes[0].threshold == 0.1
    assert warehouse_client.command("SELECT count() FROM alert_episodes") == 3  # written once each


def test_the_rules_default_to_the_data_directory(tmp_path):
    alerting = AlertingResource(data_dir=str(tmp_path))
    assert alerting.rules_file() == tmp_path / RULES_FILE_NAME
    assert load_rules(alerting.rules_file()) == load_rules(EXAMPLE_RULES)  # the defaults until it is written


def test_example_rules_load():
    rules = load_rules(EXAMPLE_RULES)
    assert {r.name for r in rules} == {"error_rate_spike", "p99_latency_spike", "volume_drop"}
    assert {r.kind for r in rules} == {"baseline", "volume_drop"}
