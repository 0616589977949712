"""Make the durable broker's stored producer state agree with its stored batches before Tansu starts.

Tansu 0.6's S3 storage (``dynostore.rs``, ``produce``) handles an idempotent produce in three writes:
it first advances the producer's sequence number for the partition in ``meta.json``, then the
partition's high watermark in ``watermark.json``, and only then writes the record batch object;
the client is answered after the last one. A kill -9 between the first and the last write leaves a
sequence number ahead of the batches that exist. The producer (still running, unanswered) retries
that batch after the restart with the same sequence, Tansu finds the stored sequence higher and
answers ``DUPLICATE_SEQUENCE_NUMBER``, which an idempotent Kafka client takes as success: the
events are acknowledged and never written (measured: 1,294 acknowledged events lost in one kill,
``meta.json`` 1,294 sequence numbers ahead of partition 3's batches).

:func:`recover` runs while the broker is down and puts the state back where the batches are:

* each producer's sequence for a partition becomes the end of its newest stored batch there (the
  retry is then written as a new batch); a producer with no batch left in a partition whose whole
  log is still stored gets 0 (its first batch was the torn one), and where retention has already
  deleted the log's start the stored value is kept (nothing tells it apart from deleted batches);
* the leftovers of a merge the compaction pass did not finish (records also in the merged batch) go;
* a high watermark past the end of the newest batch comes back to that end, so the retry gets the
  offsets the lost batch had and the log has no hole.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

# base offset .. base sequence and record count of a Kafka record batch (magic 2): see compaction.py
_HEADER = struct.Struct(">qiibIhiqqqhiI")
_BATCH_SUFFIX = ".batch"


@dataclass(frozen=True)
class BatchHeader:
    """What recovery needs from one stored batch."""

    base_offset: int
    next_offset: int
    producer_id: int
    producer_epoch: int
    next_sequence: int


@dataclass
class Recovery:
    """What :func:`recover` changed: ``(topic, partition, producer, epoch, stored, now)`` rows and
    ``(topic, partition, stored high watermark, now)`` rows."""

    sequences: list[tuple[str, int, int, int, int, int]] = field(default_factory=list)
    watermarks: list[tuple[str, int, int, int]] = field(default_factory=list)
    leftovers: list[tuple[str, int, int]] = field(default_factory=list)  # (topic, partition, base offset)

    def describe(self) -> list[str]:
        """One line per change, for the broker's log."""
        return [
            *(
                f"{t}[{p}] producer {pid} epoch {e}: sequence {a} -> {b} (torn produce)"
                for t, p, pid, e, a, b in self.sequences
            ),
            *(f"{t}[{p}] high watermark {a} -> {b} (torn produce)" for t, p, a, b in self.watermarks),
            *(
                f"{t}[{p}] batch {o} deleted: its records are in the merged batch before it"
                for t, p, o in self.leftovers
            ),
        ]


def decode_header(data: bytes, base_offset: int) -> BatchHeader:
    """The header of a stored batch (its first 61 bytes); the base offset is in the object's key."""
    _, _, _, magic, _, _, lod, _, _, pid, epoch, base_sequence, count = _HEADER.unpack_from(data)
    if magic != 2:
        raise ValueError(f"record batch magic {magic}, not 2")
    return BatchHeader(base_offset, base_offset + lod + 1, pid, epoch, base_sequence + count)


class _Store:
    def __init__(self, client: Any, bucket: str, cluster: str) -> None:
        self._s3, self.bucket, self.prefix = client, bucket, f"clusters/{cluster}/"

    def read_json(self, key: str) -> tuple[dict[str, Any], str] | None:
        try:
            obj = self._s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return json.loads(obj["Body"].read()), obj["ETag"]

    def write_json(self, key: str, value: dict[str, Any], etag: str) -> None:
        body = json.dumps(value, separators=(",", ":")).encode()
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json", IfMatch=etag)

    def batch_offsets(self, partition: str) -> list[tuple[int, str]]:
        found = []
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=f"{partition}records/")
        for page in pages:
            for obj in page.get("Contents", []):
                name = obj["Key"].rsplit("/", 1)[-1]
                if name.endswith(_BATCH_SUFFIX):
                    found.append((int(name[: -len(_BATCH_SUFFIX)]), obj["Key"]))
        return sorted(found)

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=key)

    def header(self, key: str, base_offset: int) -> BatchHeader:
        body = self._s3.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{_HEADER.size - 1}")["Body"].read()
        return decode_header(body, base_offset)


def _drop_merge_leftovers(
    store: _Store, topic: str, partition: int, batches: list[tuple[int, str]], done: Recovery
) -> list[BatchHeader]:
    """The partition's batch headers, oldest first, without the leftovers of an interrupted merge.

    The compaction pass (``retention.py``) writes a merged batch under its first batch's key and then
    deletes the others; a kill in between leaves objects whose records the merged batch also holds.
    Left there, the next pass would merge them with the batches after them into an object that overlaps
    the merged one (measured: consumers after the restart then missed acknowledged events), so they go now.
    """
    headers: list[BatchHeader] = []
    for offset, key in batches:
        header = store.header(key, offset)
        if headers and header.next_offset <= headers[-1].next_offset:
            store.delete(key)
            done.leftovers.append((topic, partition, offset))
            continue
        headers.append(header)
    return headers


def _partition_prefix(prefix: str, topic: str, partition: int) -> str:
    return f"{prefix}topics/{topic}/partitions/{partition:0>10}/"


def recover(client: Any, bucket: str, cluster: str) -> Recovery:
    """Bring ``meta.json``'s producer sequences and each partition's high watermark back to the
    stored batches. Run it only while no broker uses the bucket."""
    store = _Store(client, bucket, cluster)
    done = Recovery()
    read = store.read_json(f"{store.prefix}meta.json")
    if read is None:
        return done
    meta, meta_etag = read
    # (topic, partition) -> {(producer, epoch): stored next sequence}, newest epoch of each producer only
    wanted: dict[tuple[str, int], dict[tuple[int, int], int]] = {}
    for pid, detail in (meta.get("producers") or {}).items():
        epochs = detail.get("sequences") or {}
        if not epochs:
            continue
        epoch = max(epochs, key=int)
        for topic, partitions in (epochs[epoch] or {}).items():
            for partition, sequence in partitions.items():
                wanted.setdefault((topic, int(partition)), {})[(int(pid), int(epoch))] = sequence
    topics = {topic for topic, _ in wanted} | set(meta.get("topics") or {})
    changed_meta = False
    for topic in sorted(topics):
        num = ((meta.get("topics") or {}).get(topic, {}).get("topic") or {}).get("num_partitions", 0)
        for partition in sorted({p for t, p in wanted if t == topic} | set(range(num))):
            changed_meta |= _recover_partition(store, topic, partition, meta, wanted.get((topic, partition), {}), done)
    if changed_meta:
        store.write_json(f"{store.prefix}meta.json", meta, meta_etag)
    return done


def _recover_partition(
    store: _Store,
    topic: str,
    partition: int,
    meta: dict[str, Any],
    producers: dict[tuple[int, int], int],
    done: Recovery,
) -> bool:
    prefix = _partition_prefix(store.prefix, topic, partition)
    batches = store.batch_offsets(prefix)
    watermark_read = store.read_json(f"{prefix}watermark.json")
    low = (watermark_read[0].get("low") or 0) if watermark_read else 0
    whole_log = low == 0 and (not batches or batches[0][0] == 0)  # retention has deleted nothing
    headers = _drop_merge_leftovers(store, topic, partition, batches, done)
    found: dict[tuple[int, int], int] = {}
    newest_end = headers[-1].next_offset if headers else low  # no batch: every write past the log start tore
    for header in reversed(headers):  # newest first
        found.setdefault((header.producer_id, header.producer_epoch), header.next_sequence)
    changed = False
    for (pid, epoch), stored in producers.items():
        actual = found.get((pid, epoch), 0 if whole_log else None)
        if actual is not None and actual < stored:
            meta["producers"][str(pid)]["sequences"][str(epoch)][topic][str(partition)] = actual
            done.sequences.append((topic, partition, pid, epoch, stored, actual))
            changed = True
    if watermark_read is not None and newest_end is not None:
        watermark, etag = watermark_read
        high = watermark.get("high")
        if high is not None and high > newest_end:
            watermark["high"] = newest_end
            store.write_json(f"{prefix}watermark.json", watermark, etag)
            done.watermarks.append((topic, partition, high, newest_end))
    return changed
