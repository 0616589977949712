"""The columnar path for Arrow tables (Parquet, CSV): same wire bytes as `eventpulse.imports.rows`."""

from __future__ import annotations

import pyarrow as pa

from eventpulse.imports.rows import Encoded, RowEncoder


class ColumnarEncoder:
    def __init__(self, rows: RowEncoder) -> None:
        self.rows = rows

    def encode_table(self, table: pa.Table, first: int, identity: str, received_ms: int) -> Encoded:
        return self.rows.encode_table(table, first, identity, received_ms)
