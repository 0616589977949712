"""Reading an import file in chunks of rows, from any row on (a resumed import skips what was acknowledged).

NDJSON comes as lines (each decoded by the gateway's rules); CSV and Parquet as Arrow tables whose
columns are renamed by the column mapping (``--map field=column``) and whose Arrow timestamps are
epoch milliseconds, so both encoders (`eventpulse.imports.rows`, `eventpulse.imports.columnar`)
see the same values.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from eventpulse.imports.files import Format, ImportFile


@dataclass(slots=True)
class Chunk:
    """Rows ``first`` .. ``first + count - 1`` of a file: a table (CSV, Parquet) or lines (NDJSON)."""

    first: int
    count: int
    table: pa.Table | None = None
    lines: list[bytes] | None = None


def parse_mapping(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["timestamp=ts", "data.user_id=uid"]`` as ``{column: field}`` (what each source column becomes)."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        field, sep, column = pair.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise ValueError(f"a mapping is FIELD=COLUMN (e.g. timestamp=ts or data.user_id=uid), got {pair!r}")
        mapping[column.strip()] = field.strip()
    return mapping


def read_chunks(
    file: ImportFile, chunk_rows: int, skip: int = 0, mapping: Mapping[str, str] | None = None
) -> Iterator[Chunk]:
    """The file's rows from row ``skip`` on, ``chunk_rows`` at a time."""
    if file.format is Format.NDJSON:
        yield from _ndjson_chunks(file, chunk_rows, skip)
        return
    batches = _parquet_batches(file, chunk_rows, skip) if file.format is Format.PARQUET else _csv_batches(file)
    first = skip if file.format is Format.PARQUET else 0
    yield from _rechunk(batches, chunk_rows, skip, first, dict(mapping or {}))


def total_rows(file: ImportFile) -> int | None:
    """How many rows the file holds, when that is known without reading it (Parquet)."""
    if file.format is not Format.PARQUET:
        return None
    with file.filesystem.open_input_file(file.path) as src:
        return pq.ParquetFile(src).metadata.num_rows


def _ndjson_chunks(file: ImportFile, chunk_rows: int, skip: int) -> Iterator[Chunk]:
    with file.filesystem.open_input_stream(file.path, compression=file.compression) as raw:
        lines = io.BufferedReader(raw, 1 << 20)  # a pyarrow NativeFile reads like RawIOBase
        row = 0
        for _ in range(skip):
            if not lines.readline():
                return
            row += 1
        while True:
            block = [line for _, line in zip(range(chunk_rows), lines, strict=False)]
            if not block:
                return
            yield Chunk(row, len(block), lines=[line.rstrip(b"\r\n") for line in block])
            row += len(block)


def _parquet_batches(file: ImportFile, chunk_rows: int, skip: int) -> Iterator[pa.RecordBatch]:
    """Record batches from row ``skip`` on: whole row groups before it are not read."""
    with file.filesystem.open_input_file(file.path) as src:
        parquet = pq.ParquetFile(src)
        groups: list[int] = []
        before = 0
        for index in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(index).num_rows
            if not groups and before + rows <= skip:
                before += rows
            else:
                groups.append(index)
        drop = skip - before
        for batch in parquet.iter_batches(batch_size=chunk_rows, row_groups=groups):
            if drop >= batch.num_rows:
                drop -= batch.num_rows
                continue
            yield batch.slice(drop) if drop else batch
            drop = 0


def _csv_batches(file: ImportFile) -> Iterator[pa.RecordBatch]:
    with file.filesystem.open_input_stream(file.path, compression=file.compression) as src:
        reader = pacsv.open_csv(src, read_options=pacsv.ReadOptions(block_size=8 << 20))
        yield from reader


def _rechunk(
    batches: Iterator[pa.RecordBatch], chunk_rows: int, skip: int, first: int, mapping: dict[str, str]
) -> Iterator[Chunk]:
    """Tables of ``chunk_rows`` rows from row ``skip`` on (``first``: the row the batches start at)."""
    pending: list[pa.RecordBatch] = []
    held = 0
    row = first
    for batch in batches:
        if row < skip:  # CSV: the rows before a resume point are read and dropped
            if row + batch.num_rows <= skip:
                row += batch.num_rows
                continue
            batch, row = batch.slice(skip - row), skip
        pending.append(batch)
        held += batch.num_rows
        while held >= chunk_rows:
            table = pa.Table.from_batches(pending)
            yield Chunk(row, chunk_rows, table=prepare(table.slice(0, chunk_rows), mapping))
            rest = table.slice(chunk_rows)
            pending, held, row = rest.to_batches(), rest.num_rows, row + chunk_rows
    if held:
        yield Chunk(row, held, table=prepare(pa.Table.from_batches(pending), mapping))


def prepare(table: pa.Table, mapping: Mapping[str, str]) -> pa.Table:
    """Columns renamed to event fields by ``mapping``; Arrow timestamps as epoch milliseconds (int64)."""
    names = [mapping.get(name, name) for name in table.column_names]
    columns = []
    for column in table.columns:
        if pa.types.is_timestamp(column.type):
            millis = pc.cast(column, pa.timestamp("ms", tz=column.type.tz), safe=False)
            column = pc.cast(millis, pa.int64())
        columns.append(column)
    return pa.table(columns, names=names)
