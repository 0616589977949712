"""Episodes, channels, acknowledgement, silences and escalation, time stepped on hand-made windows;
deliveries to a real local HTTP server and a real local SMTP server (aiosmtpd)."""

from datetime import UTC, datetime, timedelta

import pytest

from eventpulse.alert_rules import AlertRule
from eventpulse.alert_state import acknowledge, add_silence, read_episodes, read_notifications
from eventpulse.config.orchestration import OrchestrationSettings
from orchestration.alerting.service import tick
from tests.orchestration.alerting.receivers import smtp_server
from tests.orchestration.alerting.windows import insert_windows, minutes, window_row
from tests.orchestration.sensors.webhook_server import Recorder, webhook_server

pytestmark = pytest.mark.integration

RULE = AlertRule(name="errors", metric="error_rate", threshold=0.2, min_events=10, severity="critical")
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _settings(hook: str, slack: str, smtp_port: int, **extra) -> OrchestrationSettings:
    return OrchestrationSettings(
        alert_webhook_urls=(hook,),
        alert_slack_webhook_urls=(slack,),
        alert_smtp_host="127.0.0.1",
        alert_smtp_port=smtp_port,
        alert_email_to=("oncall@example.com",),
        alert_webhook_attempts=2,
        alert_webhook_backoff_s=0.01,
        **extra,
    )


def _burning(client, tenants: list[str], count: int = 40) -> None:
    """``count`` minutes of windows from START in which every one of ``tenants`` has 50 % errors."""
    insert_windows(client, [window_row(t, m, 100, errors=50) for t in tenants for m in minutes(START, count)])


def _at(minute: float) -> datetime:
    return START + timedelta(minutes=minute)


def test_one_notification_per_group_then_reminders_escalation_and_ack(warehouse_client):
    _burning(warehouse_client, ["acme", "globex"])
    hook, slack = Recorder(), Recorder()
    with webhook_server(hook) as hook_url, webhook_server(slack) as slack_url, smtp_server() as (port, inbox):
        settings = _settings(hook_url, slack_url, port, alert_renotify_minutes=5, alert_escalate_after_minutes=12)
        first = tick(warehouse_client, [RULE], settings, now=_at(2))
        assert first.firings >= 2 and len(first.changes) == 1 and "opened" in first.changes[0]
        for m in (3, 4, 5, 6):  # still firing: nothing new
            assert tick(warehouse_client, [RULE], settings, now=_at(m)).notified == []
        assert len(hook.accepted) == 1 and len(slack.accepted) == 1 and not inbox.messages
        body = hook.accepted[0]["body"]
        assert (body["kind"], body["rule"], body["tenants"], body["status"]) == (
            "firing",
            "errors",
            ["acme", "globex"],
            "firing",
        )
        assert slack.accepted[0]["body"].keys() == {"text"} and "FIRING: errors" in slack.accepted[0]["body"]["text"]

        tick(warehouse_client, [RULE], settings, now=_at(7))  # 5 min after the first notice: a reminder
        assert [r["body"]["kind"] for r in hook.accepted] == ["firing", "reminder"]
        tick(warehouse_client, [RULE], settings, now=_at(14))  # 12 min open, unacknowledged: escalation by mail
        assert [r["body"]["kind"] for r in hook.accepted] == ["firing", "reminder", "reminder"]
        assert len(inbox.messages) == 1 and inbox.recipients == [["oncall@example.com"]]
        assert "ESCALATED: errors" in inbox.messages[0]["Subject"]

        (episode,) = read_episodes(warehouse_client)
        acknowledge(warehouse_client, episode.episode_id[:6], by="alice", note="looking", now=_at(15))
        for m in (20, 25, 30):
            tick(warehouse_client, [RULE], settings, now=_at(m))
        assert len(hook.accepted) == 3 and len(inbox.messages) == 1  # acknowledged: no more reminders

        tick(warehouse_client, [RULE], settings, now=_at(45))  # windows end at 40: resolved
        assert [r["body"]["kind"] for r in hook.accepted][-1] == "resolved"
        assert "RESOLVED" in inbox.messages[-1]["Subject"]  # it had escalated: the mail channel hears too

    (episode,) = read_episodes(warehouse_client)
    assert episode.status == "resolved" and episode.notifications == 5 and episode.escalated_at == _at(14)
    sent = read_notifications(warehouse_client, episode.episode_id)
    assert sorted((n["kind"], n["channel"]) for n in sent) == sorted(
        [("firing", "webhook"), ("firing", "slack")]
        + [("reminder", "webhook"), ("reminder", "slack")] * 2
        + [("escalation", "email"), ("resolved", "webhook"), ("resolved", "slack"), ("resolved", "email")]
    )
    assert all(n["ok"] for n in sent)


def test_a_silence_holds_notifications_until_it_expires(warehouse_client):
    _burning(warehouse_client, ["acme"])
    hook = Recorder()
    with webhook_server(hook) as url:
        settings = OrchestrationSettings(alert_webhook_urls=(url,), alert_escalate_after_minutes=0)
        add_silence(
            warehouse_client, rule="errors", tenant="acme", duration=timedelta(minutes=10), by="bob", now=_at(1)
        )
        add_silence(  # another tenant's silence does not cover acme
            warehouse_client, rule="errors", tenant="globex", duration=timedelta(hours=1), by="bob", now=_at(1)
        )
        for m in range(2, 11):
            tick(warehouse_client, [RULE], settings, now=_at(m))
        assert hook.requests == []
        assert [e.status for e in read_episodes(warehouse_client)] == ["firing"]  # tracked, not told
        tick(warehouse_client, [RULE], settings, now=_at(11))  # the silence ended at 11
        assert [r["body"]["kind"] for r in hook.accepted] == ["firing"]


def test_an_undelivered_notification_goes_out_on_the_next_tick(warehouse_client):
    _burning(warehouse_client, ["acme"])
    down = Recorder(fail_first=100, status_when_failing=503)
    with webhook_server(down) as url:
        settings = OrchestrationSettings(alert_webhook_urls=(url,), alert_webhook_attempts=2, alert_webhook_backoff_s=0)
        report = tick(warehouse_client, [RULE], settings, now=_at(2))
    assert len(down.requests) == 2 and report.failed and report.notified == []
    up = Recorder()
    with webhook_server(up) as url:
        settings = OrchestrationSettings(alert_webhook_urls=(url,))
        tick(warehouse_client, [RULE], settings, now=_at(3))
    assert [r["body"]["kind"] for r in up.accepted] == ["firing"]
    assert up.accepted[0]["key"] == down.requests[0]["key"]  # the same notice: a receiver can deduplicate
    (episode,) = read_episodes(warehouse_client)
    assert episode.notifications == 1
