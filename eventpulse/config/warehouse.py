"""Warehouse (ClickHouse, or chDB served over ClickHouse's HTTP interface locally)."""

from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from eventpulse.access.credentials import DEFAULT_USER_NAMES, Credentials, Role, read_users_file
from eventpulse.config.base import Section
from eventpulse.config.tls import check_pair


class WarehouseSettings(Section):
    """How every component reaches the warehouse.

    ``url`` is ``http(s)://[user[:password]@]host:port`` for a ClickHouse server (or the local
    warehouse server), or ``chdb://PATH`` for the engine in-process (one process per path).
    Environment: ``EVENTPULSE_WAREHOUSE_URL``, ``EVENTPULSE_WAREHOUSE_DATABASE``,
    ``EVENTPULSE_WAREHOUSE_USER``, ``EVENTPULSE_WAREHOUSE_PASSWORD``, ``EVENTPULSE_WAREHOUSE_HOST``,
    ``EVENTPULSE_WAREHOUSE_PORT``, ``EVENTPULSE_WAREHOUSE_PATH``, ``EVENTPULSE_WAREHOUSE_RAW_TTL_DAYS``,
    ``EVENTPULSE_WAREHOUSE_CLUSTER``, ``EVENTPULSE_WAREHOUSE_CREDENTIALS_FILE``,
    ``EVENTPULSE_WAREHOUSE_<ROLE>_USER`` and ``EVENTPULSE_WAREHOUSE_<ROLE>_PASSWORD`` for the roles
    ``ADMIN``, ``WRITER`` and ``READER``.

    Every client connects as one of three users (`credentials`): admin (migrations, keys, access
    rules), writer (the dataflow, gateway and orchestration) or reader (dashboards, query API).
    """

    model_config = SettingsConfigDict(env_prefix="EVENTPULSE_WAREHOUSE_")

    url: str = Field("http://127.0.0.1:8123", description="ClickHouse HTTP URL or chdb://PATH.")
    database: str = Field("eventpulse", description="Database holding the platform's tables.")
    user: str = Field(
        "default", description="ClickHouse user for a role with neither its own variables nor a credentials file."
    )
    password: SecretStr = Field(SecretStr(""), description="Password of ``user``.")
    credentials_file: Path | None = Field(
        None,
        description=(
            "JSON file with the admin, writer and reader users (generated with mode 0600 by the local stack; "
            "default <chdb path>-users.json). Per-role variables beat it."
        ),
    )
    admin_user: str | None = Field(None, description="User for migrations, keys and access rules.")
    admin_password: SecretStr | None = Field(None, description="Password of the admin user.")
    writer_user: str | None = Field(None, description="User of the dataflow, gateway and orchestration.")
    writer_password: SecretStr | None = Field(None, description="Password of the writer user.")
    reader_user: str | None = Field(None, description="User of the dashboards and the query API (read only).")
    reader_password: SecretStr | None = Field(None, description="Password of the reader user.")
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

    def credentials(self, role: Role) -> Credentials:
        """The user and password ``role`` connects with.

        In order: the role's own variables (``EVENTPULSE_WAREHOUSE_<ROLE>_PASSWORD``, with
        ``_USER`` or the default name ``eventpulse_<role>``); the credentials file, if it exists;
        else ``user``/``password`` (one user for everything, as a bare ClickHouse has).
        """
        password: SecretStr | None = getattr(self, f"{role}_password")
        user: str | None = getattr(self, f"{role}_user")
        if password is not None:
            return Credentials(role, user or DEFAULT_USER_NAMES[role], password.get_secret_value())
        if self.credentials_file is not None and self.credentials_file.exists():
            found = read_users_file(self.credentials_file)[role]
            return Credentials(role, user or found.user, found.password)
        return Credentials(role, user or self.user, self.password.get_secret_value())

    def environment(self) -> dict[str, str]:
        """The ``EVENTPULSE_WAREHOUSE_*`` variables that point a child process at this warehouse,
        as these users (URL, database, credentials file and any per-role user and password)."""
        env = {"EVENTPULSE_WAREHOUSE_URL": self.url, "EVENTPULSE_WAREHOUSE_DATABASE": self.database}
        if self.credentials_file is not None:
            env["EVENTPULSE_WAREHOUSE_CREDENTIALS_FILE"] = str(self.credentials_file)
        for role in ("admin", "writer", "reader"):
            user, password = getattr(self, f"{role}_user"), getattr(self, f"{role}_password")
            if user is not None:
                env[f"EVENTPULSE_WAREHOUSE_{role.upper()}_USER"] = user
            if password is not None:
                env[f"EVENTPULSE_WAREHOUSE_{role.upper()}_PASSWORD"] = password.get_secret_value()
        return env
