"""Evaluate every rule and hand the firings to delivery: the work behind the alert sensor."""

from datetime import datetime

from clickhouse_connect.driver.client import Client

from eventpulse.alert_rules import AlertRule
from orchestration.alerting.delivery import AlertDeliveryOutcome, DeliveryPolicy, process
from orchestration.alerting.evaluate import evaluate
from orchestration.alerting.firing import Firing
from orchestration.resources import AlertingResource


def policy(alerting: AlertingResource) -> DeliveryPolicy:
    settings = alerting.settings()
    return DeliveryPolicy(
        urls=tuple(settings.alert_webhook_urls),
        attempts=settings.alert_webhook_attempts,
        backoff_s=settings.alert_webhook_backoff_s,
        timeout_s=settings.alert_webhook_timeout_s,
    )


def run_rules(
    client: Client, rules: list[AlertRule], delivery: DeliveryPolicy, now: datetime | None = None
) -> tuple[list[Firing], AlertDeliveryOutcome]:
    firings = [f for rule in rules for f in evaluate(client, rule, now)]
    return firings, process(client, firings, delivery)
