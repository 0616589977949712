"""Bulk import (`eventpulse import`, ``POST /api/import``, the Dagster import asset)."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from eventpulse.config.base import Section


class ImportSettings(Section):
    """How files are read, produced and checkpointed.

    Environment: ``EVENTPULSE_IMPORT_<FIELD>``, e.g. ``EVENTPULSE_IMPORT_CHECKPOINT_DIR``,
    ``EVENTPULSE_IMPORT_CHUNK_ROWS``, ``EVENTPULSE_IMPORT_MAX_UPLOAD_BYTES``,
    ``EVENTPULSE_IMPORT_S3_URL`` (the prefix the Dagster sensor watches).
    """

    model_config = SettingsConfigDict(env_prefix="EVENTPULSE_IMPORT_")

    checkpoint_dir: Path | None = Field(
        None, description="Where per-file checkpoints are kept; default <data_dir>/import-checkpoints."
    )
    chunk_rows: int = Field(50_000, gt=0, description="Rows read, validated and produced as one chunk.")
    chunks_in_flight: int = Field(
        4, gt=0, description="Chunks produced and not yet acknowledged by the broker before reading waits."
    )
    ack_timeout_s: float = Field(120.0, gt=0, description="Longest wait for the broker to acknowledge a chunk (s).")
    columnar: bool = Field(
        True,
        description="Validate and encode Parquet and CSV column by column (rows it cannot settle go to the "
        "general validator); false: every row through the general path.",
    )
    checkpoint_after_ack: bool = Field(
        True,
        description="Advance a file's checkpoint only past rows the broker acknowledged. Off only to show the loss "
        "(a checkpoint written when rows are produced skips, after a crash, rows that were never acknowledged).",
    )
    max_upload_bytes: int = Field(
        1024 * 1024 * 1024, gt=0, description="Largest body POST /api/import takes (bytes, as sent)."
    )
    max_concurrent_uploads: int = Field(2, gt=0, description="Uploads POST /api/import imports at once; others wait.")
    s3_url: str = Field("", description="s3://bucket/prefix the Dagster import sensor watches for new files.")
    tenant: str = Field("", description="Tenant the Dagster import asset files events under.")
