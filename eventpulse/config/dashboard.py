"""Streamlit (dashboards/)."""

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from eventpulse.config.base import Section


class DashboardSettings(Section):
    """Streamlit's listen address, what the pages link to, and the limits they enforce.

    Environment: ``EVENTPULSE_DASHBOARD_<FIELD>``, e.g. ``EVENTPULSE_DASHBOARD_GATEWAY_URL``.
    """

    model_config = SettingsConfigDict(env_prefix="EVENTPULSE_DASHBOARD_")

    host: str = Field("127.0.0.1")
    port: int = Field(8501)
    gateway_url: str = Field("http://127.0.0.1:8000", description="Gateway base URL (health and metrics).")
    http_timeout_s: float = Field(1.0, gt=0, description="Timeout of the gateway status probes (s).")
    refresh_seconds: float = Field(2.0, gt=0, le=60, description="Auto-refresh period of the live pages.")
    live_lookback_minutes: int = Field(15, gt=0, description="Default history shown on the live page.")
    sql_max_execution_s: float = Field(10.0, gt=0, description="SQL console: max_execution_time per query.")
    sql_max_result_rows: int = Field(10_000, gt=0, description="SQL console: rows returned at most.")
    sql_max_rows_to_read: int = Field(500_000_000, gt=0, description="SQL console: rows a query may read.")
    search_page_size: int = Field(50, gt=0, le=1000, description="Event search: rows per page.")
    query_cache_ttl_s: float = Field(
        300.0,
        gt=0,
        description="With Redis (EVENTPULSE_REDIS_URL): how long a query result is kept. A result is never"
        " served once newer rows landed in a table it reads (its key names the tables' data version).",
    )
    query_cache_version_s: float = Field(
        1.0,
        ge=0,
        description="With Redis: how long the tables' data version, read from system.parts, is shared by every"
        " dashboard process (one probe per period, not per query); new rows show within this. 0: probe per query.",
    )

    sign_in: bool = Field(
        True,
        description="Require sign-in (local users of `eventpulse users`, or OIDC). False: everyone is a local"
        " platform admin, for a demo on one's own machine only.",
    )
    session_ttl_s: float = Field(8 * 3600.0, gt=0, description="How long a dashboard sign-in lasts (s).")
    session_secret: SecretStr = Field(
        SecretStr(""),
        description="HMAC key that signs session tokens. Empty: a random key, shared through Redis when"
        " EVENTPULSE_REDIS_URL is set (so every dashboard process accepts the same tokens), else per process.",
    )
    oidc: bool = Field(
        False,
        description="Offer OIDC sign-in through Streamlit's st.login (the provider is configured in"
        " .streamlit/secrets.toml, [auth] section). An OIDC user is let in only if `eventpulse users` has a"
        " user named as the identity's e-mail; that user's role and tenant apply.",
    )
    oidc_provider: str = Field("", description="The [auth.<name>] provider passed to st.login; empty: [auth].")
    oidc_label: str = Field("Sign in with single sign-on", description="The OIDC button's label.")
