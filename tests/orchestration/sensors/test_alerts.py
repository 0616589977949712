"""The alert sensor: rules evaluated in the warehouse, webhooks posted to a real local HTTP server."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from eventpulse.aggregation.spec import metric_names
from eventpulse.alert_rules import EXAMPLE_RULES, load_rules
from orchestration.resources import AlertingResource
from orchestration.sensors.alerts import alert_rules_sensor
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


def _window_row(tenant: str, start: datetime, events: int, errors: int = 0, p99: float = 100.0, type_="*", source="*"):
    metrics = dict.fromkeys(metric_names(), 0)
    metrics.update(
        event_count=events, error_count=errors, error_rate=errors / events if events else 0.0, latency_p99=p99
    )
    key = [tenant, 60, 60, start, start + timedelta(seconds=60), type_, source]
    return [*key, *metrics.values(), 1, "stream", 1, start]


def _insert(client, rows) -> None:
    columns = ["tenant", "window_seconds", "slide_seconds", "window_start", "window_end", "type", "source"]
    columns += [*metric_names(), "is_final", "origin", "version", "emitted_at"]
    client.insert("window_aggregates", rows, column_names=columns)


def _alerting(tmp_path: Path, url: str) -> AlertingResource:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    return AlertingResource(rules_path=str(rules), webhook_urls=[url], attempts=4, backoff_s=0.01)


def test_rules_fire_deliver_with_retries_and_dedup(resources, warehouse_client, tmp_path):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    latest = now - timedelta(minutes=2)
    rows = []
    for k in range(1, 7):  # six closed minutes, the latest last
        start = latest - timedelta(minutes=6 - k)
        rows.append(_window_row("acme", start, 100, errors=30 if k == 6 else 1))  # error spike in the latest
        rows.append(_window_row("quiet", start, 100 if k < 6 else 10))  # volume drop in the latest
        rows.append(_window_row("fast", start, 50))
    rows.append(_window_row("fast", latest, 50, p99=2500.0, type_="checkout", source="web_app"))
    _insert(warehouse_client, rows)

    recorder = Recorder(fail_first=2)
    with webhook_server(recorder) as url:
        context_resources = {**resources, "alerting": _alerting(tmp_path, url)}
        first = alert_rules_sensor(dg.build_sensor_context(resources=context_resources))
        assert isinstance(first, dg.SkipReason)
        fired = {(r["body"]["rule"], r["body"]["tenant"]) for r in recorder.accepted}
        assert fired == {("high_error_rate", "acme"), ("volume_drop", "quiet"), ("slow_p99", "fast")}
        assert len(recorder.requests) == 3 + 2  # two 503s retried
        assert len({r["key"] for r in recorder.accepted}) == 3

        second = alert_rules_sensor(dg.build_sensor_context(resources=context_resources))
        assert "3 already known" in second.skip_message
        assert len(recorder.requests) == 5  # deduplicated: nothing posted again

    stored = warehouse_client.query(
        "SELECT rule, tenant, type, metric, value, threshold, delivered, attempts FROM alerts FINAL ORDER BY rule"
    ).result_rows
    assert [(r[0], r[1], r[6]) for r in stored] == [
        ("high_error_rate", "acme", 1),
        ("slow_p99", "fast", 1),
        ("volume_drop", "quiet", 1),
    ]
    assert stored[0][4] == 0.3 and stored[0][5] == 0.1 and stored[1][2] == "checkout/web_app"
    assert sum(r[7] for r in stored) == 5


def test_undelivered_alerts_are_retried_on_the_next_tick(resources, warehouse_client, tmp_path):
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
    _insert(warehouse_client, [_window_row("acme", start, 100, errors=50)])
    down = Recorder(fail_first=100, status_when_failing=500)
    with webhook_server(down) as url:
        alert_rules_sensor(dg.build_sensor_context(resources={**resources, "alerting": _alerting(tmp_path, url)}))
    assert len(down.requests) == 4 and not down.accepted
    assert warehouse_client.command("SELECT delivered FROM alerts FINAL") == 0

    up = Recorder()
    with webhook_server(up) as url:
        alert_rules_sensor(dg.build_sensor_context(resources={**resources, "alerting": _alerting(tmp_path, url)}))
    assert [r["body"]["rule"] for r in up.accepted] == ["high_error_rate"]
    assert up.accepted[0]["key"] == down.requests[0]["key"]
    assert warehouse_client.query("SELECT delivered, attempts FROM alerts FINAL").result_rows == [(1, 5)]


def test_example_rules_load():
    rules = load_rules(EXAMPLE_RULES)
    assert {r.name for r in rules} == {"error_rate_spike", "p99_latency_spike", "volume_drop"}
    assert {r.kind for r in rules} == {"baseline", "volume_drop"}
