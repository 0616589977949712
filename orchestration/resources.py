"""Dagster resources: the warehouse, the broker, the archive store, alerting and the platform settings.

Every field is an optional override; what is left unset comes from `eventpulse.settings.Settings`
(the ``EVENTPULSE_*`` environment), read when a run uses the resource, never at import.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from clickhouse_connect.driver.client import Client
from confluent_kafka.admin import AdminClient
from pyarrow import fs as pafs
from pydantic import Field

from eventpulse.aggregation.spec import WindowSpec, window_specs
from eventpulse.alert_rules import rules_path
from eventpulse.broker import admin as broker_admin
from eventpulse.config.broker import BrokerSettings
from eventpulse.config.imports import ImportSettings
from eventpulse.config.orchestration import OrchestrationSettings
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.imports.files import filesystem_of
from eventpulse.settings import Settings
from eventpulse.warehouse.client import create_client
from orchestration.archive.store import ArchiveStore, open_store


def _overrides(**values: Any) -> dict[str, Any]:
    """The overrides that were set (typed ``Any``: each goes to the settings field of the same name)."""
    return {k: v for k, v in values.items() if v is not None}


class PlatformResource(dg.ConfigurableResource):
    """EventPulse's settings (windows, retention, thresholds), read from the environment at run time."""

    data_dir: str | None = Field(default=None, description="Overrides EVENTPULSE_DATA_DIR.")

    def settings(self) -> Settings:
        return Settings(**_overrides(data_dir=self.data_dir))

    def orchestration(self) -> OrchestrationSettings:
        return self.settings().orchestration

    def window_specs(self) -> tuple[WindowSpec, ...]:
        """Every window family the stream computes: a day's recompute must rebuild them all."""
        stream = self.settings().stream
        return window_specs(stream.window_seconds, stream.sliding_windows)


class WarehouseResource(dg.ConfigurableResource):
    """The ClickHouse warehouse, through `eventpulse.warehouse.client.create_client`."""

    url: str | None = Field(default=None, description="Overrides EVENTPULSE_WAREHOUSE_URL.")
    database: str | None = Field(default=None, description="Overrides EVENTPULSE_WAREHOUSE_DATABASE.")
    user: str | None = Field(default=None, description="Overrides EVENTPULSE_WAREHOUSE_USER.")
    password: str | None = Field(default=None, description="Overrides EVENTPULSE_WAREHOUSE_PASSWORD.")

    def settings(self) -> WarehouseSettings:
        return WarehouseSettings(
            **_overrides(url=self.url, database=self.database, user=self.user, password=self.password)
        )

    @contextmanager
    def client(self) -> Iterator[Client]:
        """A client for the run; closed afterwards."""
        client = create_client(self.settings(), role="writer")
        try:
            yield client
        finally:
            client.close()


class BrokerResource(dg.ConfigurableResource):
    """The Kafka-API broker, for topic offsets and consumer lag."""

    bootstrap: str | None = Field(default=None, description="Overrides EVENTPULSE_BROKER_BOOTSTRAP.")
    events_topic: str | None = Field(default=None, description="Overrides EVENTPULSE_BROKER_EVENTS_TOPIC.")

    def settings(self) -> BrokerSettings:
        return BrokerSettings(**_overrides(bootstrap=self.bootstrap, events_topic=self.events_topic))

    def admin(self) -> AdminClient:
        return broker_admin.admin_client(self.settings())

    def partition_offsets(self, topic: str | None = None, timeout: float = 10.0) -> dict[int, tuple[int, int]]:
        """``{partition: (low, high)}`` of the events topic (or ``topic``)."""
        return broker_admin.partition_offsets(self.admin(), topic or self.settings().events_topic, timeout)


class ArchiveResource(dg.ConfigurableResource):
    """Where archived Parquet goes: a local directory (default ``<data_dir>/archive``) or S3-compatible storage."""

    url: str | None = Field(default=None, description="Overrides EVENTPULSE_ORCHESTRATION_ARCHIVE_URL (path or s3://).")
    data_dir: str | None = Field(default=None, description="Overrides EVENTPULSE_DATA_DIR (for the default root).")
    s3_endpoint_url: str | None = Field(default=None, description="Overrides EVENTPULSE_ORCHESTRATION_S3_ENDPOINT_URL.")
    s3_access_key_id: str | None = Field(
        default=None, description="Overrides EVENTPULSE_ORCHESTRATION_S3_ACCESS_KEY_ID."
    )
    s3_secret_access_key: str | None = Field(
        None, description="Overrides EVENTPULSE_ORCHESTRATION_S3_SECRET_ACCESS_KEY."
    )
    s3_region: str | None = Field(default=None, description="Overrides EVENTPULSE_ORCHESTRATION_S3_REGION.")

    def settings(self) -> OrchestrationSettings:
        return OrchestrationSettings(
            **_overrides(
                archive_url=self.url,
                s3_endpoint_url=self.s3_endpoint_url,
                s3_access_key_id=self.s3_access_key_id,
                s3_secret_access_key=self.s3_secret_access_key,
                s3_region=self.s3_region,
            )
        )

    def filesystem(self, url: str) -> tuple[pafs.FileSystem, str]:
        """The filesystem and path of ``url`` (``s3://`` with this store's endpoint and keys, or a local path)."""
        return filesystem_of(url, self.settings())

    def store(self) -> ArchiveStore:
        settings = self.settings()
        data_dir = Path(self.data_dir) if self.data_dir else Settings().data_dir
        return open_store(settings, default_root=data_dir / "archive")


class AlertingResource(dg.ConfigurableResource):
    """Alert rules, the channels notifications go to and the escalation policy (overrides for tests and deploys)."""

    rules_path: str | None = Field(default=None, description="Overrides EVENTPULSE_ORCHESTRATION_ALERT_RULES_PATH.")
    data_dir: str | None = Field(default=None, description="Overrides EVENTPULSE_DATA_DIR (the default rules path).")
    webhook_urls: list[str] | None = Field(
        default=None, description="Overrides EVENTPULSE_ORCHESTRATION_ALERT_WEBHOOK_URLS."
    )
    slack_webhook_urls: list[str] | None = Field(
        default=None, description="Overrides EVENTPULSE_ORCHESTRATION_ALERT_SLACK_WEBHOOK_URLS."
    )
    email_to: list[str] | None = Field(default=None, description="Overrides EVENTPULSE_ORCHESTRATION_ALERT_EMAIL_TO.")
    smtp_host: str | None = Field(default=None, description="Overrides EVENTPULSE_ORCHESTRATION_ALERT_SMTP_HOST.")
    smtp_port: int | None = Field(default=None, description="Overrides EVENTPULSE_ORCHESTRATION_ALERT_SMTP_PORT.")
    renotify_minutes: float | None = Field(
        default=None, description="Overrides EVENTPULSE_ORCHESTRATION_ALERT_RENOTIFY_MINUTES."
    )
    escalate_after_minutes: float | None = Field(
        default=None, description="Overrides EVENTPULSE_ORCHESTRATION_ALERT_ESCALATE_AFTER_MINUTES."
    )
    attempts: int | None = Field(default=None, description="Overrides EVENTPULSE_ORCHESTRATION_ALERT_WEBHOOK_ATTEMPTS.")
    backoff_s: float | None = Field(
        default=None, description="Overrides EVENTPULSE_ORCHESTRATION_ALERT_WEBHOOK_BACKOFF_S."
    )

    def settings(self) -> OrchestrationSettings:
        def listed(values: list[str] | None) -> tuple[str, ...] | None:
            return tuple(values) if values is not None else None

        return OrchestrationSettings(
            **_overrides(
                alert_rules_path=self.rules_path,
                alert_webhook_urls=listed(self.webhook_urls),
                alert_slack_webhook_urls=listed(self.slack_webhook_urls),
                alert_email_to=listed(self.email_to),
                alert_smtp_host=self.smtp_host,
                alert_smtp_port=self.smtp_port,
                alert_renotify_minutes=self.renotify_minutes,
                alert_escalate_after_minutes=self.escalate_after_minutes,
                alert_webhook_attempts=self.attempts,
                alert_webhook_backoff_s=self.backoff_s,
            )
        )

    def rules_file(self) -> Path:
        """The rules file: the configured one, else ``<data_dir>/alert_rules.yaml`` (the defaults until it exists)."""
        data_dir = Path(self.data_dir) if self.data_dir else Settings().data_dir
        return rules_path(self.settings().alert_rules_path, data_dir)


class ImportResource(dg.ConfigurableResource):
    """Where files to import arrive (an S3 prefix, read with the archive's object-store settings) and the tenant."""

    url: str | None = Field(default=None, description="Overrides EVENTPULSE_IMPORT_S3_URL (s3://bucket/prefix).")
    tenant: str | None = Field(default=None, description="Overrides EVENTPULSE_IMPORT_TENANT.")
    checkpoint_dir: str | None = Field(default=None, description="Overrides EVENTPULSE_IMPORT_CHECKPOINT_DIR.")

    def settings(self) -> ImportSettings:
        return ImportSettings(**_overrides(s3_url=self.url, tenant=self.tenant, checkpoint_dir=self.checkpoint_dir))
