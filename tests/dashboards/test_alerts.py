"""The Alerts page: open episodes the rule engine opened, acknowledgement and silences written from the
page, rules shown and edited with validation (saved to the data directory)."""

from datetime import UTC, datetime, timedelta

from dashboards import formatting as fmt
from eventpulse.alert_rules import EXAMPLE_RULES, RULES_FILE_NAME, AlertRule, load_rules
from eventpulse.alert_state import acks, read_episodes, read_silences
from eventpulse.config.orchestration import OrchestrationSettings
from orchestration.alerting.service import tick
from tests.dashboards.apptest import ADMIN, metrics, open_page, table_with
from tests.dashboards.conftest import use_warehouse
from tests.orchestration.alerting.windows import insert_windows, minutes, window_row

RULES = [
    AlertRule(name="errors", metric="error_rate", threshold=0.2, severity="critical"),
    AlertRule(name="busy", metric="event_count", threshold=500, group="tenant"),
]


def _button(at, label: str):
    (button,) = [b for b in at.button if b.label == label]
    return button


def test_alerts_page_acknowledges_silences_and_edits_rules(warehouse, warehouse_client, monkeypatch, tmp_path):
    use_warehouse(monkeypatch, warehouse)
    monkeypatch.setenv("EVENTPULSE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("EVENTPULSE_ORCHESTRATION_ALERT_RULES_PATH", raising=False)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=5)
    rows = [window_row("initech", m, 100, errors=50) for m in minutes(start, 4)]
    rows += [window_row(t, m, 900) for t in ("acme", "globex") for m in minutes(start, 4)]
    insert_windows(warehouse_client, rows)
    tick(warehouse_client, RULES, OrchestrationSettings(alert_escalate_after_minutes=0), now=now)
    opened = {e.rule: e for e in read_episodes(warehouse_client)}
    assert sorted((e.rule, e.group_key) for e in read_episodes(warehouse_client)) == [
        ("busy", "busy:acme"),
        ("busy", "busy:globex"),
        ("errors", "errors"),
    ]

    at = open_page("alerts")
    shown = metrics(at)
    assert shown["Open episodes"] == fmt.count(3) and shown["Critical open"] == fmt.count(1)
    assert shown["Unacknowledged"] == fmt.count(3) and shown["Active silences"] == fmt.count(0)
    assert sorted(table_with(at, "episode_id")["rule"].tolist())[:3] == ["busy", "busy", "errors"]
    assert list(table_with(at, "rule")["rule"]) == [r.name for r in load_rules(EXAMPLE_RULES)]

    at.selectbox(key="ack_episode").set_value(opened["errors"].episode_id)
    at.text_input(key="ack_note").input("on it")
    _button(at, "Acknowledge").click().run()
    assert not at.exception, at.exception
    (ack,) = acks(warehouse_client, [opened["errors"].episode_id]).values()
    assert (ack.acked_by, ack.note) == (ADMIN, "on it")
    assert metrics(at)["Unacknowledged"] == fmt.count(2)

    at.selectbox(key="silence_rule").set_value("volume_drop")
    at.text_input(key="silence_tenant").input("globex")
    at.selectbox(key="silence_for").set_value("2 hours")
    _button(at, "Silence").click().run()
    assert not at.exception, at.exception
    (silence,) = read_silences(warehouse_client)
    assert (silence.rule, silence.tenant, silence.created_by) == ("volume_drop", "globex", ADMIN)
    assert silence.ends_at - silence.starts_at == timedelta(hours=2)
    assert metrics(at)["Active silences"] == fmt.count(1)

    rules_file = tmp_path / RULES_FILE_NAME
    at.text_area(key="rules_text").input("rules:\n  - name: bad\n    metric: no_such_metric\n    threshold: 1\n")
    at.button(key="save_rules").click().run()
    assert any("no_such_metric" in e.value for e in at.error) and not rules_file.exists()
    at.text_area(key="rules_text").input("rules:\n  - name: busy\n    metric: event_count\n    threshold: 10\n")
    at.button(key="save_rules").click().run()
    assert not at.exception and [r.name for r in load_rules(rules_file)] == ["busy"]
    at.run()
    assert list(table_with(at, "rule")["rule"]) == ["busy"]
