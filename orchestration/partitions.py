"""The daily partitions every day-based asset shares (UTC days of event time)."""

from datetime import date

import dagster as dg

PARTITIONS_START = "2025-01-01"

DAILY = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC")
"""One partition per UTC day up to yesterday: a day is recomputed once it is over."""


def day_of(partition_key: str) -> date:
    """The date a partition key names (validated: it ends up in DDL such as PARTITION '...')."""
    return date.fromisoformat(partition_key)
