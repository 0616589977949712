"""Dagster (orchestration/): where archives go, how long raw events stay, alert delivery, thresholds."""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from eventpulse.config.base import Section


class OrchestrationSettings(Section):
    """Dagster's address, the archive store, retention, checks and alerting.

    Environment: ``EVENTPULSE_ORCHESTRATION_<FIELD>``, e.g. ``EVENTPULSE_ORCHESTRATION_ARCHIVE_URL``,
    ``EVENTPULSE_ORCHESTRATION_S3_ENDPOINT_URL``, ``EVENTPULSE_ORCHESTRATION_S3_ACCESS_KEY_ID``,
    ``EVENTPULSE_ORCHESTRATION_S3_SECRET_ACCESS_KEY``, ``EVENTPULSE_ORCHESTRATION_S3_REGION``,
    ``EVENTPULSE_ORCHESTRATION_RETENTION_DAYS``, ``EVENTPULSE_ORCHESTRATION_ALERT_RULES_PATH``,
    ``EVENTPULSE_ORCHESTRATION_ALERT_WEBHOOK_URLS`` (JSON list).
    """

    model_config = SettingsConfigDict(env_prefix="EVENTPULSE_ORCHESTRATION_")

    host: str = Field("127.0.0.1", description="Listen address of the Dagster webserver.")
    port: int = Field(3000, description="Listen port of the Dagster webserver.")

    # Archive store.
    archive_url: str = Field(
        "", description="Archive root: a local path or s3://bucket/prefix; default <data_dir>/archive."
    )
    s3_endpoint_url: str = Field("", description="S3-compatible endpoint (MinIO, moto...); empty = AWS.")
    s3_access_key_id: str = Field("", description="S3 access key id; empty = the default AWS credential chain.")
    s3_secret_access_key: SecretStr = Field(SecretStr(""), description="S3 secret access key.")
    s3_region: str = Field("us-east-1", description="S3 region.")
    archive_rows_per_file: int = Field(1_000_000, gt=0, description="Most rows in one Parquet file.")
    archive_compression_level: int = Field(3, ge=1, le=22, description="zstd level of archived Parquet.")

    # Retention of raw events (only ever after a verified archive).
    retention_days: int = Field(30, ge=1, description="Raw-event days kept in the warehouse after archival.")

    # Checks.
    freshness_max_lag_s: float = Field(300.0, gt=0, description="Aggregates may trail raw events this long (s).")
    max_dead_letter_rate: float = Field(0.05, ge=0, le=1, description="Dead letters / all messages, last hour.")
    max_late_event_rate: float = Field(0.01, ge=0, le=1, description="Too-late events / events, last hour.")
    check_lookback_s: int = Field(3600, gt=0, description="Trailing period the stream-health checks look at (s).")
    settle_s: int = Field(
        420, ge=0, description="Windows younger than this are still open for the stream; checks skip them (s)."
    )
    max_listed_differences: int = Field(10_000, gt=0, description="Most differences a check lists in metadata.")

    # Sensors.
    max_consumer_lag: int = Field(100_000, ge=0, description="Consumer lag (messages) that raises an alert.")
    sensor_interval_s: int = Field(60, ge=5, description="How often the sensors evaluate (s).")

    # Alerts.
    alert_rules_path: Path | None = Field(
        None,
        description="YAML alert rules; default <data_dir>/alert_rules.yaml (the shipped defaults until it exists).",
    )
    alert_webhook_urls: tuple[str, ...] = Field((), description="Webhooks every alert is posted to (JSON list).")
    alert_slack_webhook_urls: tuple[str, ...] = Field(
        (), description="Slack-compatible incoming webhooks (JSON with `text`) alerts are posted to (JSON list)."
    )
    alert_email_to: tuple[str, ...] = Field((), description="Recipients of alert e-mails (JSON list).")
    alert_email_from: str = Field("eventpulse@localhost", description="Sender of alert e-mails.")
    alert_smtp_host: str = Field("", description="SMTP server alert e-mails go through; empty = no e-mail.")
    alert_smtp_port: int = Field(25, gt=0, description="SMTP port (587 with STARTTLS, 465 is not supported).")
    alert_smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")
    alert_smtp_user: str = Field("", description="SMTP login; empty = no authentication.")
    alert_smtp_password: SecretStr = Field(SecretStr(""), description="SMTP password.")
    alert_channels: tuple[Literal["webhook", "slack", "email"], ...] = Field(
        ("webhook", "slack"), description="Channels an episode is notified on when it fires, reminds and resolves."
    )
    alert_escalation_channels: tuple[Literal["webhook", "slack", "email"], ...] = Field(
        ("email",), description="Channels an unacknowledged episode escalates to."
    )
    alert_renotify_minutes: float = Field(
        30.0, ge=0, description="Re-notify a firing, unacknowledged episode this often (min; 0 = never)."
    )
    alert_escalate_after_minutes: float = Field(
        15.0, ge=0, description="Escalate a firing episode unacknowledged this long (min; 0 = never)."
    )
    alert_notify_resolved: bool = Field(True, description="Notify when a notified episode resolves.")
    alert_webhook_timeout_s: float = Field(5.0, gt=0, description="Timeout of one webhook attempt (s).")
    alert_webhook_attempts: int = Field(4, ge=1, description="Attempts per delivery within one evaluation.")
    alert_webhook_backoff_s: float = Field(0.5, ge=0, description="First retry delay; doubles each attempt (s).")
