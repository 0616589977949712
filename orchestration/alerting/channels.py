"""Where alert notifications go: a generic webhook (the episode as JSON), a Slack-compatible incoming
webhook (JSON with ``text``) and e-mail over SMTP (stdlib ``smtplib``).

Each channel sends one `Notice` and returns one `Delivery` per destination; a webhook retries
transient failures with backoff (`orchestration.alerting.delivery.post_json`) and carries an
``Idempotency-Key`` (episode, kind, notification number) so a receiver can drop a retried duplicate.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Protocol

import httpx

from eventpulse.alert_state import Episode
from eventpulse.config.orchestration import OrchestrationSettings
from orchestration.alerting.delivery import DeliveryPolicy, post_json

KINDS = ("firing", "reminder", "escalation", "resolved")


@dataclass(frozen=True)
class Notice:
    """One notification of an episode: ``kind`` is firing, reminder, escalation or resolved."""

    kind: str
    episode: Episode
    acked_by: str = ""

    @property
    def key(self) -> str:
        return f"{self.episode.episode_id}:{self.kind}:{self.episode.notifications + 1}"

    def subject(self) -> str:
        e = self.episode
        what = {"firing": "FIRING", "reminder": "STILL FIRING", "escalation": "ESCALATED", "resolved": "RESOLVED"}
        return f"[{e.severity}] {what[self.kind]}: {e.rule} ({', '.join(e.tenants) or e.group_key})"

    def text(self) -> str:
        e = self.episode
        lines = [self.subject(), e.message, f"episode {e.episode_id}, open since {e.opened_at:%Y-%m-%d %H:%M:%S} UTC"]
        if e.series:
            lines.append("firing: " + ", ".join(e.series[:20]) + (" ..." if len(e.series) > 20 else ""))
        if self.kind in ("reminder", "escalation"):
            lines.append(f"acknowledge: eventpulse alerts ack {e.episode_id}")
        return "\n".join(lines)

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": self.kind, "text": self.text()}
        for name, value in self.episode.__dict__.items():
            body[name] = value.isoformat() if isinstance(value, datetime) else value
        return body


@dataclass(frozen=True)
class Delivery:
    channel: str
    destination: str
    ok: bool
    attempts: int
    error: str = ""


class Channel(Protocol):
    @property
    def name(self) -> str: ...

    def send(self, notice: Notice) -> list[Delivery]: ...


@dataclass(frozen=True)
class WebhookChannel:
    """POST the episode as JSON (``kind``, ``text`` and every episode field) to each URL."""

    urls: tuple[str, ...]
    policy: DeliveryPolicy
    name: str = "webhook"

    def body(self, notice: Notice) -> dict[str, Any]:
        return notice.payload()

    def send(self, notice: Notice) -> list[Delivery]:
        deliveries = []
        with httpx.Client(timeout=self.policy.timeout_s) as http:
            for url in self.urls:
                ok, attempts, error = post_json(http, url, self.body(notice), notice.key, self.policy)
                deliveries.append(Delivery(self.name, url, ok, attempts, error))
        return deliveries


@dataclass(frozen=True)
class SlackChannel(WebhookChannel):
    """A Slack-compatible incoming webhook: ``{"text": ...}`` (Slack, Mattermost, Rocket.Chat, Teams' adapter)."""

    name: str = "slack"

    def body(self, notice: Notice) -> dict[str, Any]:
        return {"text": notice.text()}


@dataclass(frozen=True)
class EmailChannel:
    """One e-mail to every recipient through the SMTP server (STARTTLS and login if configured)."""

    host: str
    port: int
    sender: str
    to: tuple[str, ...]
    starttls: bool = False
    user: str = ""
    password: str = ""
    timeout_s: float = 10.0
    name: str = "email"

    def send(self, notice: Notice) -> list[Delivery]:
        message = EmailMessage()
        message["Subject"] = notice.subject()
        message["From"] = self.sender
        message["To"] = ", ".join(self.to)
        message["X-EventPulse-Episode"] = notice.episode.episode_id
        message.set_content(notice.text())
        destination = f"smtp://{self.host}:{self.port}"
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.user:
                    smtp.login(self.user, self.password)
                refused = smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            return [Delivery(self.name, destination, False, 1, f"{type(exc).__name__}: {exc}")]
        error = f"refused: {', '.join(refused)}" if refused else ""
        return [Delivery(self.name, destination, True, 1, error)]


def build_channels(settings: OrchestrationSettings) -> dict[str, Channel]:
    """The configured channels by name (a channel without destinations is left out)."""
    policy = DeliveryPolicy(
        urls=(),
        attempts=settings.alert_webhook_attempts,
        backoff_s=settings.alert_webhook_backoff_s,
        timeout_s=settings.alert_webhook_timeout_s,
    )
    channels: dict[str, Channel] = {}
    if settings.alert_webhook_urls:
        channels["webhook"] = WebhookChannel(tuple(settings.alert_webhook_urls), policy)
    if settings.alert_slack_webhook_urls:
        channels["slack"] = SlackChannel(tuple(settings.alert_slack_webhook_urls), policy)
    if settings.alert_smtp_host and settings.alert_email_to:
        channels["email"] = EmailChannel(
            settings.alert_smtp_host,
            settings.alert_smtp_port,
            settings.alert_email_from,
            tuple(settings.alert_email_to),
            settings.alert_smtp_starttls,
            settings.alert_smtp_user,
            settings.alert_smtp_password.get_secret_value(),
            settings.alert_webhook_timeout_s * 2,
        )
    return channels
