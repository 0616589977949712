"""The Bytewax dataflows (flows/)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from eventpulse.config.base import Section


class StreamSettings(Section):
    """Windowing, batching and emission of the dataflow.

    Environment: ``EVENTPULSE_STREAM_<FIELD>``, e.g. ``EVENTPULSE_STREAM_BATCH_SIZE``.
    """

    model_config = SettingsConfigDict(env_prefix="EVENTPULSE_STREAM_")

    batch_size: int = Field(5000, gt=0, description="Most messages the source hands over at once.")
    window_seconds: tuple[int, ...] = Field((10, 60), description="Tumbling window lengths (s).")
    sliding_windows: tuple[tuple[int, int], ...] = Field(
        ((300, 60),), description="Hopping windows as (length, slide) in seconds."
    )
    max_out_of_order_s: float = Field(5.0, ge=0, description="Watermark bound on disorder (s).")
    allowed_lateness_s: float = Field(60.0, ge=0, description="How late an event may still update.")
    provisional_interval_s: float = Field(1.0, gt=0, description="Emission period of open windows.")
    insert_batch_rows: int = Field(20_000, gt=0, description="Rows per warehouse insert at most.")
