"""The alerts page shows the rules file and what orchestration's rule engine recorded."""

from dashboards import formatting as fmt
from eventpulse.alert_rules import EXAMPLE_RULES, AlertRule, load_rules
from eventpulse.warehouse.client import create_client
from orchestration.alerting.delivery import DeliveryPolicy
from orchestration.alerting.service import run_rules
from tests.dashboards.apptest import metrics, open_page, table_with


def test_alerts_page_shows_firings_and_rules(dashboard_env, sql):
    rules = [
        AlertRule(name="any_errors", metric="error_rate", threshold=0.0, lookback_s=1800, severity="critical"),
        AlertRule(name="busy_tenant", metric="event_count", threshold=500, lookback_s=1800),
    ]
    client = create_client(dashboard_env.warehouse, role="admin")
    firings, _ = run_rules(client, rules, DeliveryPolicy(urls=(), attempts=1, backoff_s=0, timeout_s=1))
    client.close()
    assert firings

    at = open_page("alerts")
    shown = metrics(at)
    total, critical, undelivered = sql(
        """SELECT count(), countIf(severity = 'critical'), countIf(delivered = 0) FROM alerts FINAL
           WHERE fired_at >= now64(3) - INTERVAL 1 HOUR"""
    )[0]
    assert total == len(firings)
    assert shown["Firings"] == fmt.count(total)
    assert shown["Critical"] == fmt.count(critical)
    assert shown["Not delivered"] == fmt.count(undelivered)
    assert shown["Rules firing"] == fmt.count(len({f.rule for f in firings}))
    assert len(table_with(at, "fired_at")) == total
    shown_rules = table_with(at, "rule")
    assert list(shown_rules["rule"]) == [r.name for r in load_rules(EXAMPLE_RULES)]
