"""The raw-event and dead-letter rows as Arrow schemas (what the dataflow inserts, what the archive writes).

Times are ``timestamp[ms, UTC]`` (ClickHouse ``DateTime64(3, 'UTC')``); names and order are
`RAW_EVENT_COLUMNS` and `DEAD_LETTER_COLUMNS`, checked at import.
"""

import pyarrow as pa

from eventpulse.events.model import DEAD_LETTER_COLUMNS, RAW_EVENT_COLUMNS

TIMESTAMP_MS = pa.timestamp("ms", tz="UTC")

RAW_EVENT_SCHEMA = pa.schema(
    [
        ("tenant", pa.string()),
        ("id", pa.string()),
        ("timestamp", TIMESTAMP_MS),
        ("type", pa.string()),
        ("source", pa.string()),
        ("user_id", pa.string()),
        ("latency_ms", pa.float64()),
        ("is_error", pa.uint8()),
        ("data", pa.string()),
        ("extra", pa.string()),
        ("schema_version", pa.uint16()),
        ("received_at", TIMESTAMP_MS),
        ("topic_partition", pa.uint32()),
        ("topic_offset", pa.uint64()),
    ]
)

DEAD_LETTER_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("tenant", pa.string()),
        ("stage", pa.string()),
        ("reason", pa.string()),
        ("field", pa.string()),
        ("detail", pa.string()),
        ("payload", pa.string()),
        ("topic", pa.string()),
        ("topic_partition", pa.int32()),
        ("topic_offset", pa.int64()),
        ("received_at", TIMESTAMP_MS),
    ]
)

if tuple(RAW_EVENT_SCHEMA.names) != RAW_EVENT_COLUMNS or tuple(DEAD_LETTER_SCHEMA.names) != DEAD_LETTER_COLUMNS:
    raise RuntimeError("the Arrow schemas disagree with the column lists in eventpulse.events.model")
