"""Merge runs of small record batches of the durable broker into one object per run.

Tansu's S3 storage writes one object per produced record batch, and lists *every* object of a
partition on each fetch: at the local stack's default rate (traffic in 0.1 s ticks, 4 partitions)
that is ~10 objects per partition per second, and once a listing outlasts the consumer's fetch wait
(500 ms) a fetch returns one batch at a time (measured: 58 messages/s at 4,000 batches): the flow
falls behind for good. Merging keeps the objects per partition near ``bytes / target_bytes``.

A run is merged when every batch in it is an uncompressed, non-transactional, non-control magic-2
batch of one producer and epoch, with offsets and sequence numbers that follow on (what an
idempotent producer writes). The merged batch is the Kafka record batch those records would have
formed in one produce: records get their offset and timestamp deltas against the first batch,
the header its counts and a new CRC-32C. It is written under the first batch's key with the run's
*last* Last-Modified (``server.js`` keeps that time), so Tansu still finds the log's first and last
batch by time and time retention still sees the newest record; the same write removes the others
(``REPLACES_HEADER``: ``server.js`` deletes them in the tick of the rename, so no fetch returns the
merged batch and one of its parts, which consumers read twice). A fetch that listed the old objects
meanwhile may get one 404 (the broker answers an error, the client fetches again). The newest batch
is never touched.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import crc32c

# base offset, batch length, leader epoch, magic, crc, attributes, last offset delta, base and max
# timestamp, producer id, producer epoch, base sequence, record count
_HEADER = struct.Struct(">qiibIhiqqqhiI")
_CRC_FROM = 21  # the CRC covers attributes .. end
_LENGTH_FROM = 12  # batch length counts from the leader epoch
_NOT_PLAIN = 0x07 | 0x10 | 0x20  # compression codec, transactional, control
MTIME_HEADER = "eventpulse-mtime-ms"  # x-amz-meta-… understood by server.js
REPLACES_HEADER = "eventpulse-replaces-through"  # x-amz-meta-…: the write also removes the merged batches


@dataclass(frozen=True)
class RecordBatch:
    """The header fields of one stored batch, and its records as bytes."""

    base_offset: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int
    records: bytes
    leader_epoch: int = 0

    @classmethod
    def decode(cls, data: bytes, base_offset: int) -> RecordBatch:
        """A stored batch (Tansu keeps the wire format; the base offset is in the object's key)."""
        _, length, epoch, magic, crc, attrs, lod, base_ts, max_ts, pid, pepoch, bseq, count = _HEADER.unpack_from(data)
        if magic != 2:
            raise ValueError(f"record batch magic {magic}, not 2")
        end = _LENGTH_FROM + length
        if crc32c.crc32c(data[_CRC_FROM:end]) != crc:
            raise ValueError(f"record batch at offset {base_offset}: CRC mismatch")
        return cls(base_offset, attrs, lod, base_ts, max_ts, pid, pepoch, bseq, count, data[_HEADER.size : end], epoch)

    def encode(self) -> bytes:
        body = bytearray(_HEADER.size - _CRC_FROM) + self.records
        struct.pack_into(
            ">hiqqqhiI",
            body,
            0,
            *(self.attributes, self.last_offset_delta, self.base_timestamp, self.max_timestamp),
            *(self.producer_id, self.producer_epoch, self.base_sequence, self.record_count),
        )
        head = struct.pack(">qiibI", self.base_offset, len(body) + 9, self.leader_epoch, 2, crc32c.crc32c(body))
        return head + bytes(body)

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    def follows(self, previous: RecordBatch) -> bool:
        """True when this batch may be appended to ``previous`` in one merged batch."""
        plain = not (self.attributes & _NOT_PLAIN) and self.attributes == previous.attributes
        return (
            plain
            and self.base_offset == previous.next_offset
            and (self.producer_id, self.producer_epoch) == (previous.producer_id, previous.producer_epoch)
            and (self.producer_id < 0 or self.base_sequence == previous.base_sequence + previous.record_count)
        )


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint at ``pos``: (value, position after it)."""
    shift = result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7


def _put_varint(out: bytearray, value: int) -> None:
    zigzag = (value << 1) ^ (value >> 63)
    while zigzag > 0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)


def _rebased(batch: RecordBatch, base_offset: int, base_timestamp: int) -> Iterator[bytes]:
    """``batch``'s records with offset and timestamp deltas against another base."""
    shift_offset = batch.base_offset - base_offset
    shift_time = batch.base_timestamp - base_timestamp
    data, pos = batch.records, 0
    for _ in range(batch.record_count):
        length, pos = _varint(data, pos)
        end = pos + length
        attributes = data[pos]
        time_delta, at = _varint(data, pos + 1)
        offset_delta, at = _varint(data, at)
        record = bytearray([attributes])
        _put_varint(record, time_delta + shift_time)
        _put_varint(record, offset_delta + shift_offset)
        record += data[at:end]
        head = bytearray()
        _put_varint(head, len(record))
        yield bytes(head + record)
        pos = end


def merge(batches: list[RecordBatch]) -> RecordBatch:
    """One batch holding every record of ``batches`` (each must `follow` the one before)."""
    first, last = batches[0], batches[-1]
    records = b"".join(
        batch.records if i == 0 else b"".join(_rebased(batch, first.base_offset, first.base_timestamp))
        for i, batch in enumerate(batches)
    )
    return RecordBatch(
        first.base_offset,
        first.attributes,
        last.next_offset - 1 - first.base_offset,
        first.base_timestamp,
        max(b.max_timestamp for b in batches),
        first.producer_id,
        first.producer_epoch,
        first.base_sequence,
        sum(b.record_count for b in batches),
        records,
        first.leader_epoch,
    )
