"""Dagster (orchestration/)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from eventpulse.config.base import Section


class OrchestrationSettings(Section):
    """Dagster's port and the archive store.

    Environment: ``EVENTPULSE_ORCHESTRATION_<FIELD>``.
    """

    model_config = SettingsConfigDict(env_prefix="EVENTPULSE_ORCHESTRATION_")

    host: str = Field("127.0.0.1")
    port: int = Field(3000)
    archive_url: str = Field(
        "", description="Archive root (local path or s3://bucket/prefix); default <data_dir>/archive."
    )
