"""One evaluation of the alert rules: firings → episodes → notifications. The work behind the sensor.

`tick` evaluates every rule (`orchestration.alerting.evaluate`), advances the episodes
(`orchestration.alerting.episodes`), reads acknowledgements and silences, sends what the escalation
policy says is due (`orchestration.alerting.escalation`) on the configured channels, and writes the
episodes that changed and the notification log. A notification no destination accepted is not
counted, so it goes out again on the next tick.
"""

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from clickhouse_connect.driver.client import Client

from eventpulse.alert_rules import AlertRule
from eventpulse.alert_state import (
    FIRING,
    NOTIFICATION_COLUMNS,
    Episode,
    acks,
    read_episodes,
    read_silences,
    silenced_by,
    write_episodes,
)
from eventpulse.config.orchestration import OrchestrationSettings
from orchestration.alerting.channels import Channel, Delivery, Notice, build_channels
from orchestration.alerting.delivery import AlertDeliveryOutcome, DeliveryPolicy, process
from orchestration.alerting.episodes import advance
from orchestration.alerting.escalation import EscalationPolicy, channels_for, due
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


def escalation_policy(settings: OrchestrationSettings) -> EscalationPolicy:
    def minutes(value: float) -> timedelta | None:
        return timedelta(minutes=value) if value > 0 else None

    return EscalationPolicy(
        channels=tuple(settings.alert_channels),
        escalation_channels=tuple(settings.alert_escalation_channels),
        renotify=minutes(settings.alert_renotify_minutes),
        escalate_after=minutes(settings.alert_escalate_after_minutes),
        notify_resolved=settings.alert_notify_resolved,
    )


def run_rules(
    client: Client, rules: list[AlertRule], delivery: DeliveryPolicy, now: datetime | None = None
) -> tuple[list[Firing], AlertDeliveryOutcome]:
    """Evaluate and record every firing in the ``alerts`` table (one row per firing window): the
    pre-episode path, kept for the firing history and for callers that want each window."""
    firings = [f for rule in rules for f in evaluate(client, rule, now)]
    return firings, process(client, firings, delivery)


@dataclass
class TickReport:
    firings: int = 0
    open_episodes: int = 0
    changes: list[str] = field(default_factory=list)  # state changes, for the INFO log
    notified: list[str] = field(default_factory=list)  # notifications sent, for the INFO log
    failed: list[str] = field(default_factory=list)  # notifications no destination accepted

    def summary(self) -> str:
        return (
            f"{self.firings} firing window(s), {self.open_episodes} open episode(s), {len(self.changes)} change(s), "
            f"{len(self.notified)} notification(s) sent, {len(self.failed)} undelivered"
        )


def _send(notice: Notice, names: tuple[str, ...], channels: dict[str, Channel]) -> tuple[bool, list[Delivery]]:
    """Send on every configured channel of ``names``; delivered if one accepted (or none is configured)."""
    deliveries = [d for name in names if name in channels for d in channels[name].send(notice)]
    return (not deliveries or any(d.ok for d in deliveries)), deliveries


def notify(
    client: Client,
    episodes: list[Episode],
    escalation: EscalationPolicy,
    channels: dict[str, Channel],
    now: datetime,
    report: TickReport,
) -> list[Episode]:
    """Send what is due for each episode; returns the episodes whose notification state changed."""
    acked = acks(client, [e.episode_id for e in episodes])
    silences = read_silences(client, now)
    changed: list[Episode] = []
    rows = []
    for episode in episodes:
        ack = acked.get(episode.episode_id)
        kinds = due(
            episode, escalation, now, acked=ack is not None, silenced=silenced_by(episode, silences, now) is not None
        )
        updated = episode
        for kind in kinds:
            notice = Notice(kind, updated, ack.acked_by if ack else "")
            ok, deliveries = _send(notice, channels_for(kind, updated, escalation), channels)
            rows += [
                [
                    updated.episode_id,
                    updated.rule,
                    updated.tenant,
                    kind,
                    d.channel,
                    d.destination,
                    now,
                    int(d.ok),
                    d.attempts,
                    d.error,
                ]
                for d in deliveries
            ]
            if not ok:
                report.failed.append(f"{kind} of {updated.rule} (episode {updated.episode_id})")
                continue
            updated = replace(
                updated,
                notifications=updated.notifications + 1,
                notified_at=now if kind != "escalation" else updated.notified_at,
                escalated_at=now if kind == "escalation" else updated.escalated_at,
                updated_at=now,
            )
            where = ", ".join(f"{d.channel} {d.destination}" for d in deliveries if d.ok) or "no channel configured"
            report.notified.append(f"alert {updated.rule} {kind} notified (episode {updated.episode_id}): {where}")
        if updated is not episode:
            changed.append(updated)
    if rows:
        client.insert("alert_notifications", rows, column_names=list(NOTIFICATION_COLUMNS))
    return changed


def tick(
    client: Client,
    rules: list[AlertRule],
    settings: OrchestrationSettings,
    now: datetime | None = None,
    channels: dict[str, Channel] | None = None,
) -> TickReport:
    """Evaluate, advance the episodes, notify; everything that changed is written back."""
    now = now or datetime.now(UTC)
    firings = [f for rule in rules for f in evaluate(client, rule, now)]
    report = TickReport(firings=len(firings))
    open_before = read_episodes(client, status=FIRING)
    episodes, changes = advance(open_before, rules, firings, now)
    report.changes = [c.describe() for c in changes]
    notified = notify(
        client,
        episodes,
        escalation_policy(settings),
        build_channels(settings) if channels is None else channels,
        now,
        report,
    )
    latest = {e.episode_id: e for e in episodes}
    latest.update({e.episode_id: e for e in notified})
    before = {e.episode_id: e for e in open_before}
    write_episodes(client, [e for e in latest.values() if before.get(e.episode_id) != e])
    report.open_episodes = sum(e.status == FIRING for e in latest.values())
    return report
