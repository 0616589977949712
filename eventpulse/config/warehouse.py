"""Warehouse (ClickHouse, or chDB served over ClickHouse's HTTP interface locally)."""

from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from eventpulse.config.base import Section
from eventpulse.config.tls import check_pair


class WarehouseSettings(Section):
    """How every component reaches the warehouse.

    ``url`` is ``http(s)://[user[:password]@]host:port`` for a ClickHouse server (or the local
    warehouse server), or ``chdb://PATH`` for the engine in-process (one process per path).
    Environment: ``EVENTPULSE_WAREHOUSE_URL``, ``EVENTPULSE_WAREHOUSE_DATABASE``,
    ``EVENTPULSE_WAREHOUSE_USER``, ``EVENTPULSE_WAREHOUSE_PASSWORD``, ``EVENTPULSE_WAREHOUSE_HOST``,
    ``EVENTPULSE_WAREHOUSE_PORT``, ``EVENTPULSE_WAREHOUSE_PATH``, ``EVENTPULSE_WAREHOUSE_RAW_TTL_DAYS``,
    ``EVENTPULSE_WAREHOUSE_CLUSTER``.
    """

    model_config = SettingsConfigDict(env_prefix="EVENTPULSE_WAREHOUSE_")

    url: str = Field("http://127.0.0.1:8123", description="ClickHouse HTTP URL or chdb://PATH.")
    database: str = Field("eventpulse", description="Database holding the platform's tables.")
    user: str = Field("default", description="ClickHouse user (ignored by chdb://).")
    password: SecretStr = Field(SecretStr(""), description="ClickHouse password.")
    ca_cert: Path | None = Field(
        None,
        description="CA bundle (PEM) that https:// warehouse URLs are verified against (clickhouse-connect's"
        " ca_cert); empty: the system's CAs.",
    )
    verify: bool = Field(
        True, description="Verify the server's certificate on https:// URLs (never off in production)."
    )
    connect_timeout_s: float = Field(5.0, gt=0)
    query_timeout_s: float = Field(60.0, gt=0)
    # Local warehouse server (`eventpulse warehouse serve`).
    host: str = Field("127.0.0.1", description="Listen address of the local warehouse server.")
    port: int = Field(8123, description="Listen port of the local warehouse server.")
    path: Path | None = Field(None, description="chDB data path; default <data_dir>/warehouse.")
    tls_certfile: Path | None = Field(
        None, description="The local warehouse server serves HTTPS with this certificate chain (PEM). Empty: HTTP."
    )
    tls_keyfile: Path | None = Field(None, description="The local warehouse server's private key (PEM).")
    raw_ttl_days: int = Field(
        365, ge=1, description="Last-resort TTL of raw events (days); retention after archival is shorter."
    )
    cluster: str = Field(
        "",
        pattern=r"^[A-Za-z0-9_.{}-]*$",
        description=(
            "ClickHouse cluster (remote_servers) the migrations run ON CLUSTER: Replicated tables named <t>_local "
            "behind Distributed tables <t>. Empty: one server, plain MergeTree tables (docs/operations/scale-out.md)."
        ),
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> Self:
        check_pair("warehouse", self.tls_certfile, self.tls_keyfile)
        return self
