"""Why an event was refused: a machine-readable reason plus the offending field."""

from dataclasses import dataclass
from enum import StrEnum


class RejectReason(StrEnum):
    """Every reason an event can be refused; the values are stable API (clients and SQL read them)."""

    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    INVALID_VALUE = "invalid_value"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    FIELD_TOO_LARGE = "field_too_large"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"
    TIMESTAMP_TOO_OLD = "timestamp_too_old"
    MISSING_TENANT = "missing_tenant"
    TENANT_MISMATCH = "tenant_mismatch"  # a topic message whose body names another tenant than its key
    # Refusals of a whole request body (the gateway's compressed bodies and webhooks).
    BODY_TOO_LARGE_DECOMPRESSED = "body_too_large_decompressed"  # a decompression bomb (size or ratio bound)
    MALFORMED_ENCODING = "malformed_encoding"  # a compressed body that does not decompress (corrupt, truncated)
    UNMAPPABLE = "unmappable"  # a webhook payload the source's mapping cannot turn into an event
    SCHEMA_VIOLATION = "schema_violation"  # ``data`` breaks its type's registered schema (field: a JSON pointer)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused event: ``reason`` is a `RejectReason`, ``field`` a dotted path or None (for
    ``schema_violation``, the JSON pointer of the offending value, ``/data/...``)."""

    reason: RejectReason
    field: str | None
    detail: str

    def as_dict(self) -> dict[str, str | None]:
        """The JSON shape used in API error bodies and dead-letter rows."""
        return {"reason": self.reason.value, "field": self.field, "detail": self.detail}
