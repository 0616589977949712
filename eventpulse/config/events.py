"""Limits applied to every event, by the gateway and again by the dataflow."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from eventpulse.config.base import Section


class EventLimits(Section):
    """Explicit limits on event size and clock skew.

    Environment: ``EVENTPULSE_EVENTS_MAX_EVENT_BYTES``, ``EVENTPULSE_EVENTS_MAX_STRING_CHARS``,
    ``EVENTPULSE_EVENTS_MAX_FUTURE_SKEW_S``, ``EVENTPULSE_EVENTS_MAX_PAST_AGE_S``, ...
    """

    model_config = SettingsConfigDict(env_prefix="EVENTPULSE_EVENTS_")

    max_event_bytes: int = Field(64 * 1024, gt=0, description="Largest accepted encoded event.")
    max_id_chars: int = Field(128, gt=0)
    max_name_chars: int = Field(128, gt=0, description="Longest type / source / tenant / user id.")
    max_data_keys: int = Field(256, gt=0, description="Most keys in `data` (top level).")
    max_data_depth: int = Field(
        32, gt=0, le=200, description="Deepest nesting of `data` (1 = no object or array inside it)."
    )
    max_future_skew_s: int = Field(300, ge=0, description="How far ahead of now a timestamp may be.")
    max_past_age_s: int = Field(30 * 86400, ge=0, description="How far behind now a timestamp may be.")
    missing_timestamp_is_receive_time: bool = Field(
        False,
        description="Take an event sent without `timestamp` as happening when it was received "
        "(otherwise it is refused as `missing_field`).",
    )
