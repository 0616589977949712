"""Streamlit (dashboards/)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from eventpulse.config.base import Section


class DashboardSettings(Section):
    """Streamlit's listen address.

    Environment: ``EVENTPULSE_DASHBOARD_<FIELD>``.
    """

    model_config = SettingsConfigDict(env_prefix="EVENTPULSE_DASHBOARD_")

    host: str = Field("127.0.0.1")
    port: int = Field(8501)
