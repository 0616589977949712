"""The schema registry (``eventpulse schemas``, ``/api/schemas``; see ``docs/operations/schemas.md``)."""

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from eventpulse.config.base import Section

Compatibility = Literal[
    "backward", "backward_transitive", "forward", "forward_transitive", "full", "full_transitive", "none"
]


class SchemaRegistrySettings(Section):
    """Whether events are checked against registered schemas, how often the registry is re-read, the defaults.

    Environment: ``EVENTPULSE_SCHEMAS_<FIELD>``, e.g. ``EVENTPULSE_SCHEMAS_REFRESH_S``.
    """

    model_config = SettingsConfigDict(env_prefix="EVENTPULSE_SCHEMAS_")

    validate_events: bool = Field(
        True,
        description="Check each event's `data` against the latest schema registered for its tenant and type, at the"
        " gateway and in the dataflow (false: the registry is kept but not applied).",
    )
    refresh_s: float = Field(
        5.0,
        gt=0,
        le=300,
        description="Re-read the registry from the warehouse this often (gateway and dataflow): a new version applies"
        " to events within about this long. A failed read keeps the last one read.",
    )
    default_compatibility: Compatibility = Field(
        "backward",
        description="Compatibility mode of an event type that has none set (`eventpulse schemas set-mode`), as"
        " Confluent's Schema Registry defaults to BACKWARD.",
    )
    max_schema_bytes: int = Field(256 * 1024, gt=0, description="Largest schema (JSON text) that may be registered.")
