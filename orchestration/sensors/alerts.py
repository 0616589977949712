"""Evaluate the alert rules on every tick, post new firings to the webhooks, record them all."""

import dagster as dg

from eventpulse.alert_rules import load_rules
from orchestration.alerting.service import policy, run_rules
from orchestration.resources import AlertingResource, WarehouseResource


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Evaluates the alert rules (YAML: thresholds on error rate, p99 latency..., volume drops per tenant or "
        "tenant/type/source) over closed windows; every firing is recorded in `alerts` and posted to the webhooks "
        "with retries; a firing already delivered is never posted twice; undelivered ones are retried next tick."
    ),
)
def alert_rules_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource, alerting: AlertingResource
) -> dg.SkipReason:
    rules = load_rules(alerting.rules_file())
    with warehouse.client() as client:
        firings, report = run_rules(client, rules, policy(alerting))
    for firing in firings[:50]:
        context.log.info(firing.message)
    return dg.SkipReason(
        f"{len(rules)} rule(s): {len(firings)} firing(s), {report.new} new, {report.duplicates} already known, "
        f"{report.delivered} delivered, {report.failed} undelivered"
    )
