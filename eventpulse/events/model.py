"""A validated event and its two encodings: the topic's JSON and the raw-events table's row.

Wire format (the value of a message on the events topic, key ``tenant:user_id``) is the event as
the client sent it, flat, with the fields the gateway owns set by the gateway::

    {"id": "...", "timestamp": 1640995200000, "type": "user_action", "source": "web_app",
     "data": {"user_id": "12345", "action": "click", "latency_ms": 12.5, "metadata": {}},
     "tenant": "acme", "received_at": 1640995200123, "schema_version": 1, ...unknown fields}

Derived metrics, defined once here and used by the stream and the batch recomputation alike:

* ``user_id``: ``data.user_id`` (string or integer), "" when absent.
* ``latency_ms``: ``data.latency_ms`` (a non-negative number), absent when not sent.
* ``is_error``: ``type == "error"``, or ``data.error is true``, or ``data.status_code >= 500``.
"""

from typing import Any

import msgspec
import orjson

# Column order of the ``events`` table, as written by the dataflow.
RAW_EVENT_COLUMNS: tuple[str, ...] = (
    "tenant",
    "id",
    "timestamp",
    "type",
    "source",
    "user_id",
    "latency_ms",
    "is_error",
    "data",
    "extra",
    "schema_version",
    "received_at",
    "topic_partition",
    "topic_offset",
)

# Column order of the ``dead_letters`` table, as written by the gateway and the dataflow.
DEAD_LETTER_COLUMNS: tuple[str, ...] = (
    "id",
    "tenant",
    "stage",
    "reason",
    "field",
    "detail",
    "payload",
    "topic",
    "topic_partition",
    "topic_offset",
    "received_at",
)

SCHEMA_VERSION = 1


class ValidEvent(msgspec.Struct, frozen=True, gc=False):
    """An event that passed validation. Times are Unix epoch milliseconds (UTC)."""

    tenant: str
    id: str
    timestamp_ms: int
    type: str
    source: str
    user_id: str
    latency_ms: float | None
    is_error: bool
    data: dict[str, Any]
    extra: dict[str, Any]
    schema_version: int
    received_at_ms: int

    def partition_key(self) -> bytes:
        """Kafka key: one user's events stay ordered on one partition."""
        return f"{self.tenant}:{self.user_id}".encode()

    def to_wire(self) -> bytes:
        """The JSON message value written to the events topic."""
        doc: dict[str, Any] = {
            "id": self.id,
            "timestamp": self.timestamp_ms,
            "type": self.type,
            "source": self.source,
            "data": self.data,
            "tenant": self.tenant,
            "received_at": self.received_at_ms,
            "schema_version": self.schema_version,
        }
        if self.extra:  # other fields first, as sent; the envelope's own values win
            doc = {**self.extra, **doc}
        return orjson.dumps(doc)

    def raw_row(self, partition: int, offset: int) -> tuple[Any, ...]:
        """A row of the ``events`` table in `RAW_EVENT_COLUMNS` order (times as epoch ms)."""
        return (
            self.tenant,
            self.id,
            self.timestamp_ms,
            self.type,
            self.source,
            self.user_id,
            self.latency_ms,
            int(self.is_error),
            orjson.dumps(self.data).decode(),
            orjson.dumps(self.extra).decode() if self.extra else "{}",
            self.schema_version,
            self.received_at_ms,
            partition,
            offset,
        )
