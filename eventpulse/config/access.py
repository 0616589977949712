"""Tenant-scoped reads (`eventpulse.access.scoped_sql`): the limits every scoped query runs with."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from eventpulse.config.base import Section


class AccessSettings(Section):
    """Limits of tenant-facing queries (query API, SQL console, search) and what they may read.

    Environment: ``EVENTPULSE_ACCESS_<FIELD>``, e.g. ``EVENTPULSE_ACCESS_MAX_MEMORY_BYTES``.
    """

    model_config = SettingsConfigDict(env_prefix="EVENTPULSE_ACCESS_")

    max_execution_s: float = Field(10.0, gt=0, description="max_execution_time of a scoped query (s).")
    max_result_rows: int = Field(10_000, gt=0, description="max_result_rows of a scoped query.")
    max_rows_to_read: int = Field(500_000_000, gt=0, description="max_rows_to_read of a scoped query.")
    max_memory_bytes: int = Field(
        1 << 30, gt=0, description="max_memory_usage of a scoped query (bytes): one query cannot starve the server."
    )
    system_tables: tuple[str, ...] = Field(
        ("one", "numbers", "functions", "data_type_families", "formats", "time_zones"),
        description="system.* tables a scoped query may read (none of them holds tenant data).",
    )
    quota_queries_per_minute: int = Field(
        6000,
        gt=0,
        description="ClickHouse quota of each reader user (``eventpulse access apply``): queries per minute.",
    )
    tenant_column: str = Field("tenant", description="The column every tenant table carries.")
