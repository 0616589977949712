"""Evaluate the alert rules on every tick: episodes per rule group, notifications by the escalation policy.

The sensor logs at INFO only what changed (an episode opened or resolved, a notification sent); the
tick's summary goes to DEBUG and to the tick's skip message.
"""

import dagster as dg

from eventpulse.alert_rules import load_rules
from eventpulse.audit import Actor, AuditWriter
from orchestration.alerting.rule_changes import InvalidRules, RulesState, track_rules
from orchestration.alerting.service import tick
from orchestration.resources import AlertingResource, WarehouseResource

_ACTOR = Actor.system("sensor:alert_rules_sensor", source="dagster")


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Evaluates the alert rules (YAML: error rate or p99 above a multiple of their trailing baseline, "
        "thresholds, volume drops) over closed windows; firings are grouped per rule into episodes (firing → "
        "resolved) in `alert_episodes`; one notification per episode on the webhook / Slack / e-mail channels, "
        "re-sent while unacknowledged and escalated after a while; silences and acknowledgements are honoured. "
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
        report = tick(client, rules, alerting.settings())
    for line in report.changes + report.notified:
        context.log.info(line)
    for line in report.failed:
        context.log.warning(f"undelivered, retried next tick: {line}")
    summary = f"{len(rules)} rule(s): {report.summary()}"
    context.log.debug(summary)
    return dg.SkipReason(summary)
