"""Evaluate the alert rules on every tick, post new firings to the webhooks, record them all."""

import dagster as dg

from eventpulse.alert_rules import load_rules
from eventpulse.audit import Actor, AuditWriter
from orchestration.alerting.rule_changes import InvalidRules, RulesState, track_rules
from orchestration.alerting.service import policy, run_rules
from orchestration.resources import AlertingResource, WarehouseResource

_ACTOR = Actor.system("sensor:alert_rules_sensor", source="dagster")


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Evaluates the alert rules (YAML: thresholds on error rate, p99 latency..., volume drops per tenant or "
        "tenant/type/source) over closed windows; every firing is recorded in `alerts` and posted to the webhooks "
        "with retries; a firing already delivered is never posted twice; undelivered ones are retried next tick. "
        "A change of the rules file is recorded in `audit_log` (alert_rules.change)."
    ),
)
def alert_rules_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource, alerting: AlertingResource
) -> dg.SkipReason:
    with warehouse.client() as client:
        try:
            rules, state = track_rules(
                alerting.rules_file(), RulesState.from_cursor(context.cursor), load_rules, AuditWriter(client, _ACTOR)
            )
        except InvalidRules as exc:
            context.update_cursor(exc.state.to_cursor())
            raise
        context.update_cursor(state.to_cursor())
        firings, report = run_rules(client, rules, policy(alerting))
    for firing in firings[:50]:
        context.log.info(firing.message)
    return dg.SkipReason(
        f"{len(rules)} rule(s): {len(firings)} firing(s), {report.new} new, {report.duplicates} already known, "
        f"{report.delivered} delivered, {report.failed} undelivered"
    )
