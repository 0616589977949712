"""Retention and compaction for the durable local broker's log in the object store.

Tansu 0.6's S3 storage has no retention of its own (its ``maintain`` is empty, ``DeleteRecords``
is unimplemented and drops the connection), so the log would grow for ever. It keeps each
record batch as one object, ``…/partitions/<partition:010>/records/<base offset:020>.batch``,
and each partition's log start and end in ``…/partitions/<partition:010>/watermark.json``
(``{"low": …, "high": …}``). A pass of :func:`enforce` applies, per partition, Kafka's
``retention.ms`` and ``retention.bytes`` semantics to those objects:

* a batch may go when it was written more than ``retention_ms`` ago, or while the partition holds
  more than ``retention_bytes`` of batches (oldest first); deletions are always a prefix of the log
  (never a hole) and the newest batch is always kept (Tansu reads the log end from it);
* the log start is moved first: ``watermark.json``'s ``low`` is set to the first kept batch's base
  offset with a conditional PUT (``If-Match``: the object store honours it, ``server.js``), so a
  concurrent update by the broker is never overwritten (a 412 re-reads and retries); only then
  are the batches below it deleted. A pass that dies in between leaves batches below ``low``,
  deleted by the next pass.

A topic's own ``retention.ms`` / ``retention.bytes`` (set with IncrementalAlterConfigs or at
creation: Tansu stores them in ``meta.json`` and answers DescribeConfigs with them, but enforces
nothing) replace the broker's defaults for that topic, as in Kafka.

Each pass then merges runs of small batches (`devstack.broker.compaction`), so the objects per
partition, which Tansu lists on every fetch, stay near ``bytes / compact_bytes``.

Like Kafka, retention does not wait for consumers: a reader whose position was deleted starts
again at the log start (the flow's source records that as an offset-reset incident). Whatever
lies inside the window stays readable.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from devstack.broker.compaction import MTIME_HEADER, REPLACES_HEADER, RecordBatch, merge
from devstack.broker.objectstore import s3_client
from eventpulse.config.broker import BrokerSettings

log = logging.getLogger(__name__)

_BATCH_SUFFIX = ".batch"


@dataclass(frozen=True)
class RetentionPolicy:
    """How much of each partition's log is kept (0: no limit on that axis)."""

    retention_ms: int = 0
    retention_bytes: int = 0
    compact_bytes: int = 0  # merge runs of batches up to this size (0: never)

    @classmethod
    def from_settings(cls, settings: BrokerSettings) -> RetentionPolicy:
        return cls(settings.retention_ms, settings.retention_bytes, settings.compact_bytes)

    def with_topic_configs(self, configs: dict[str, str]) -> RetentionPolicy:
        """This policy with a topic's ``retention.ms`` / ``retention.bytes`` (Kafka: -1 means no limit)."""
        updates = {}
        for field, name in (("retention_ms", "retention.ms"), ("retention_bytes", "retention.bytes")):
            try:
                value = int(configs[name])
            except (KeyError, TypeError, ValueError):
                continue
            updates[field] = max(value, 0)
        return replace(self, **updates)


@dataclass(frozen=True)
class Batch:
    """One record batch object of a partition."""

    key: str
    base_offset: int
    size: int
    modified: datetime
    etag: str = ""


@dataclass(frozen=True)
class PartitionPass:
    """What one pass did to one partition."""

    partition: str
    deleted: int
    deleted_bytes: int
    kept: int
    kept_bytes: int
    log_start: int
    merged: int = 0  # objects folded into others by compaction


def expired_prefix(batches: list[Batch], policy: RetentionPolicy, now: datetime) -> int:
    """How many of the oldest ``batches`` (sorted by offset) the policy deletes; never the last."""
    if len(batches) <= 1:
        return 0
    by_time = 0
    if policy.retention_ms > 0:
        cutoff = now - timedelta(milliseconds=policy.retention_ms)
        while by_time < len(batches) and batches[by_time].modified < cutoff:
            by_time += 1
    by_bytes = 0
    if policy.retention_bytes > 0:
        excess = sum(b.size for b in batches) - policy.retention_bytes
        while by_bytes < len(batches) and excess > 0:
            excess -= batches[by_bytes].size
            by_bytes += 1
    return min(max(by_time, by_bytes), len(batches) - 1)


class Retention:
    """Retention passes over one Tansu cluster in one bucket."""

    def __init__(self, client: Any, bucket: str, cluster: str, policy: RetentionPolicy) -> None:
        self._s3, self.bucket, self.policy = client, bucket, policy
        self.prefix = f"clusters/{cluster}/topics/"
        self.meta_key = f"clusters/{cluster}/meta.json"

    def topic_configs(self) -> dict[str, dict[str, str]]:
        """``{topic: {config: value}}`` from the broker's metadata (empty before the first topic)."""
        from botocore.exceptions import ClientError

        try:
            meta = json.loads(self._s3.get_object(Bucket=self.bucket, Key=self.meta_key)["Body"].read())
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return {}
            raise
        found: dict[str, dict[str, str]] = {}
        for name, topic in (meta.get("topics") or {}).items():
            configs = (topic.get("topic") or {}).get("configs") or []
            found[name] = {
                c["name"]: str(c.get("value"))
                for c in configs
                if isinstance(c, dict) and "name" in c and c.get("value") is not None
            }
        return found

    def partitions(self) -> Iterator[str]:
        """Prefixes ``clusters/<c>/topics/<t>/partitions/<p>/`` of every partition in the bucket."""
        for topic in self._common_prefixes(self.prefix):
            yield from self._common_prefixes(f"{topic}partitions/")

    def _common_prefixes(self, prefix: str) -> Iterator[str]:
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/")
        for page in pages:
            for common in page.get("CommonPrefixes", []):
                yield common["Prefix"]

    def batches(self, partition: str) -> list[Batch]:
        """The record batches of ``partition``, oldest offset first."""
        found = []
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=f"{partition}records/")
        for page in pages:
            for obj in page.get("Contents", []):
                name = obj["Key"].rsplit("/", 1)[-1]
                if name.endswith(_BATCH_SUFFIX):
                    offset = int(name[: -len(_BATCH_SUFFIX)])
                    found.append(Batch(obj["Key"], offset, obj["Size"], obj["LastModified"], obj.get("ETag", "")))
        return sorted(found, key=lambda b: b.base_offset)

    def enforce_partition(self, partition: str, now: datetime, policy: RetentionPolicy | None = None) -> PartitionPass:
        """Apply the policy to one partition: move its log start, then delete what lies below."""
        policy = policy or self.policy
        batches = self.batches(partition)
        count = expired_prefix(batches, policy, now)
        start = batches[count].base_offset if batches else 0
        if count:
            self._raise_log_start(f"{partition}watermark.json", start)
            self._delete(batches[:count])
        gone, kept = batches[:count], batches[count:]
        merged = self.compact(kept) if self.policy.compact_bytes > 0 else 0
        return PartitionPass(
            partition,
            len(gone),
            sum(b.size for b in gone),
            len(kept) - merged,
            sum(b.size for b in kept),
            start,
            merged,
        )

    def _delete(self, batches: list[Batch]) -> None:
        doomed = [{"Key": b.key} for b in batches]
        for i in range(0, len(doomed), 1000):
            self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": doomed[i : i + 1000], "Quiet": True})

    def compact(self, batches: list[Batch]) -> int:
        """Merge runs of small batches (never the newest); how many objects went away."""
        merged, run, run_bytes = 0, [], 0
        for batch in [*batches[:-1], None]:  # None closes the last run
            if batch is not None and run_bytes + batch.size <= self.policy.compact_bytes:
                run.append(batch)
                run_bytes += batch.size
                continue
            if len(run) > 1:
                merged += self._merge_run(run)
            run, run_bytes = ([batch], batch.size) if batch is not None else ([], 0)
        return merged

    def _merge_run(self, run: list[Batch]) -> int:
        """Merge the compatible stretches of ``run``; the number of objects removed."""
        decoded: list[tuple[Batch | None, RecordBatch | None]] = []
        for batch in run:
            body = self._s3.get_object(Bucket=self.bucket, Key=batch.key)["Body"].read()
            try:
                decoded.append((batch, RecordBatch.decode(body, batch.base_offset)))
            except (ValueError, struct.error) as exc:  # not ours to rewrite: leave it as it is
                log.warning("compaction skips %s: %s", batch.key, exc)
                decoded.append((batch, None))
        removed, stretch, covered = 0, list[tuple[Batch, RecordBatch]](), -1
        leftovers: list[Batch] = []
        for item, record_batch in [*decoded, (None, None)]:
            if item is not None and record_batch is not None:
                if item.base_offset < covered:  # left by a merge that did not finish: never merge it again
                    if record_batch.next_offset <= covered:  # its records all in the batch read before it
                        leftovers.append(item)
                    record_batch = None  # (else the broker's start-up recovery deletes it)
                else:
                    covered = record_batch.next_offset
            if item is not None and record_batch is not None and stretch and record_batch.follows(stretch[-1][1]):
                stretch.append((item, record_batch))
                continue
            if len(stretch) > 1:
                removed += self._write_merged(stretch)
            stretch = [(item, record_batch)] if item is not None and record_batch is not None else []
        if leftovers:  # a fetch would return them with the merged batch: records read twice
            log.warning("compaction deletes %d leftovers of an unfinished merge: %s", len(leftovers), leftovers[0].key)
            self._delete(leftovers)
        return removed + len(leftovers)

    def _write_merged(self, stretch: list[tuple[Batch, RecordBatch]]) -> int:
        from botocore.exceptions import ClientError

        first, last = stretch[0][0], stretch[-1][0]
        body = merge([record_batch for _, record_batch in stretch]).encode()
        metadata = {MTIME_HEADER: str(int(last.modified.timestamp() * 1000)), **self._replacing(last)}
        try:
            self._s3.put_object(Bucket=self.bucket, Key=first.key, Body=body, Metadata=metadata, IfMatch=first.etag)
        except ClientError as exc:  # changed under us (retention, another pass): next time
            if exc.response.get("Error", {}).get("Code") != "PreconditionFailed":
                raise
            return 0
        # server.js has removed them with the write; a store without REPLACES_HEADER has not
        self._delete([batch for batch, _ in stretch[1:]])
        return len(stretch) - 1

    def _replacing(self, last: Batch) -> dict[str, str]:
        """The merged batch's write also removes the batches it holds, up to ``last``, in one step.

        Written first and deleted after, a Tansu fetch in between lists the merged batch and its
        parts and returns both: consumers read those records twice (measured: 1,011 of 158,400 in the
        kill test; the store held each once). ``server.js`` removes them in the same tick as the
        merged batch's rename, so a fetch sees one or the other (or a 404 for a part: it fetches again).
        """
        return {REPLACES_HEADER: last.key.rsplit("/", 1)[-1]}

    def _raise_log_start(self, key: str, start: int, attempts: int = 20) -> None:
        """Set ``low`` in the partition's watermark to ``start`` (never lower it), conditionally."""
        from botocore.exceptions import ClientError

        for _ in range(attempts):
            obj = self._s3.get_object(Bucket=self.bucket, Key=key)
            watermark = json.loads(obj["Body"].read())
            if (watermark.get("low") or 0) >= start:
                return
            watermark["low"] = start
            try:
                self._s3.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=json.dumps(watermark, separators=(",", ":")).encode(),
                    ContentType="application/json",
                    IfMatch=obj["ETag"],
                )
                return
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "PreconditionFailed":
                    raise
        raise RuntimeError(f"could not move the log start of {key}: it kept changing")

    def enforce(self, now: datetime | None = None) -> list[PartitionPass]:
        """One pass over every partition of the cluster."""
        now = now or datetime.now(UTC)
        configs = self.topic_configs()
        passes = []
        for partition in self.partitions():
            topic = partition[len(self.prefix) :].split("/", 1)[0]
            passes.append(
                self.enforce_partition(partition, now, self.policy.with_topic_configs(configs.get(topic, {})))
            )
        return passes


class RetentionWorker:
    """Runs :class:`Retention` every ``retention_check_s`` in a thread of ``eventpulse broker serve``."""

    def __init__(self, settings: BrokerSettings, cluster: str) -> None:
        self.settings = settings
        self.retention = Retention(
            s3_client(settings), settings.store_bucket, cluster, RetentionPolicy.from_settings(settings)
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wait_for_store(self, timeout: float) -> None:
        """Wait until the object store answers for the bucket (it may be starting too)."""
        from botocore.exceptions import BotoCoreError, ClientError

        from devstack.broker.errors import BrokerStartError

        deadline = time.monotonic() + timeout
        while True:
            try:
                self.retention._s3.head_bucket(Bucket=self.settings.store_bucket)
                return
            except (BotoCoreError, ClientError) as exc:
                if time.monotonic() >= deadline:
                    raise BrokerStartError(
                        f"the object store {self.settings.store_endpoint()} (bucket {self.settings.store_bucket!r}) "
                        f"does not answer: start it with `eventpulse broker store`, or use --storage memory ({exc})"
                    ) from None
                time.sleep(0.2)

    def start(self) -> None:
        if self.retention.policy == RetentionPolicy():
            return  # no limit at all
        self._thread = threading.Thread(target=self._run, name="broker-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.retention_check_s):
            try:
                passes = self.retention.enforce()
            except Exception:  # the object store restarting, say: try again next time
                log.exception("broker retention pass failed")
                continue
            deleted, merged = sum(p.deleted for p in passes), sum(p.merged for p in passes)
            if deleted or merged:
                freed = sum(p.deleted_bytes for p in passes)
                print(
                    f"retention: deleted {deleted} batches ({freed} bytes), merged {merged} small batches "
                    f"into others, in {len(passes)} partitions",
                    flush=True,
                )
