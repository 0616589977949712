"""The durable broker's object store (s3rver through server.js): conditional writes, long listings.

Negative control: s3rver as shipped (its own CLI) accepts the stale and the duplicate create that
server.js refuses, and fails a listing longer than one page.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from devstack.broker.compaction import REPLACES_HEADER
from devstack.broker.objectstore import S3RVER_DIR, find_node, object_store_argv, s3_client
from eventpulse.config.broker import BrokerSettings
from tests.support.services import _port_open, _wait, free_port, stop

pytestmark = pytest.mark.integration


@contextmanager
def store(tmp_path: Path, *, plain: bool = False) -> Iterator[BrokerSettings]:
    """server.js (or, ``plain``, s3rver's own CLI) on a free port; yields settings that reach it."""
    settings = BrokerSettings(store_port=free_port())
    if plain:
        argv = [find_node(), str(S3RVER_DIR / "node_modules" / "s3rver" / "bin" / "s3rver.js")]
        argv += ["--address", "127.0.0.1", "--port", str(settings.store_port), "--silent"]
        argv += ["--directory", str(tmp_path / "plain"), "--configure-bucket", settings.store_bucket]
    else:
        argv = object_store_argv(settings, tmp_path / "store")
    log = tmp_path / f"store-{settings.store_port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait(lambda: _port_open(settings.store_port), proc, "object store", log)
        yield settings
    finally:
        stop(proc)


def _code(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


def stale_writes_accepted(settings: BrokerSettings) -> list[str]:
    """Try a duplicate create and a stale update; the ones the store wrongly accepted."""
    s3, bucket, accepted = s3_client(settings), settings.store_bucket, []
    first = s3.put_object(Bucket=bucket, Key="meta.json", Body=b"1", IfNoneMatch="*")["ETag"]
    for name, kwargs in [("create twice", {"IfNoneMatch": "*"}), ("stale update", {"IfMatch": '"0badc0de"'})]:
        try:
            s3.put_object(Bucket=bucket, Key="meta.json", Body=b"x", **kwargs)
            accepted.append(name)
        except ClientError as exc:
            assert _code(exc) == "PreconditionFailed"
    s3.put_object(Bucket=bucket, Key="meta.json", Body=b"2", IfMatch=first)  # the current ETag: fine
    return accepted


def test_conditional_writes_are_honoured_and_plain_s3rver_ignores_them(tmp_path: Path) -> None:
    with store(tmp_path) as settings:
        assert stale_writes_accepted(settings) == []
        assert s3_client(settings).get_object(Bucket=settings.store_bucket, Key="meta.json")["Body"].read() == b"2"
    with store(tmp_path, plain=True) as settings:  # the negative control
        assert stale_writes_accepted(settings) == ["create twice", "stale update"]


def test_racing_read_modify_write_loses_no_update(tmp_path: Path) -> None:
    """Four writers increment one counter object by optimistic concurrency, as Tansu updates meta.json."""
    with store(tmp_path) as settings:
        s3, bucket = s3_client(settings), settings.store_bucket
        s3.put_object(Bucket=bucket, Key="counter", Body=b"0")
        conflicts = []

        def writer() -> None:
            client = s3_client(settings)
            for _ in range(25):
                while True:
                    obj = client.get_object(Bucket=bucket, Key="counter")
                    value = int(obj["Body"].read()) + 1
                    try:
                        client.put_object(Bucket=bucket, Key="counter", Body=str(value).encode(), IfMatch=obj["ETag"])
                        break
                    except ClientError as exc:
                        assert _code(exc) == "PreconditionFailed"
                        conflicts.append(1)

        threads = [threading.Thread(target=writer) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert int(s3.get_object(Bucket=bucket, Key="counter")["Body"].read()) == 100
        assert conflicts, "the writers never raced: the test proves nothing"


def test_listings_longer_than_a_page_are_complete_and_ordered(tmp_path: Path) -> None:
    def put_many(settings: BrokerSettings) -> list[str]:
        s3 = s3_client(settings, max_pool_connections=16)
        keys = [f"t/partitions/{p:010d}/records/{n:020d}.batch" for p in range(2) for n in range(0, 11_000, 10)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda key: s3.put_object(Bucket=settings.store_bucket, Key=key, Body=b"b"), keys))
        return keys

    def listed(settings: BrokerSettings, prefix: str, **kwargs) -> tuple[list[str], list[str]]:
        pages = s3_client(settings).get_paginator("list_objects_v2")
        keys, prefixes = [], []
        for page in pages.paginate(Bucket=settings.store_bucket, Prefix=prefix, **kwargs):
            keys += [o["Key"] for o in page.get("Contents", [])]
            prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        return keys, prefixes

    with store(tmp_path) as settings:
        keys = put_many(settings)
        part0 = [k for k in keys if "/0000000000/" in k]
        assert listed(settings, "t/partitions/0000000000/records/") == (part0, [])
        assert listed(settings, "t/partitions/", Delimiter="/") == (
            [],
            ["t/partitions/0000000000/", "t/partitions/0000000001/"],
        )
        assert listed(settings, "t/")[0] == sorted(keys)
        s3 = s3_client(settings)
        s3.delete_objects(Bucket=settings.store_bucket, Delete={"Objects": [{"Key": k} for k in part0[:1000]]})
        assert listed(settings, "t/partitions/0000000000/records/")[0] == part0[1000:]
    with store(tmp_path, plain=True) as settings:  # the negative control: its continuation tokens fail
        put_many(settings)
        with pytest.raises(ClientError, match="InternalError"):
            listed(settings, "t/partitions/0000000000/records/")


def replaced_keys_left(settings: BrokerSettings) -> list[str]:
    """A merge's write of r/0 replacing r/1 .. r/3; the keys listed afterwards."""
    s3, bucket = s3_client(settings), settings.store_bucket
    for key in ["r/0", "r/1", "r/2", "r/3", "r/4", "other/2"]:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    s3.list_objects_v2(Bucket=bucket, Prefix="r/")  # the listing index holds the directory
    s3.put_object(Bucket=bucket, Key="r/0", Body=b"merged", Metadata={REPLACES_HEADER: "3"})
    assert s3.get_object(Bucket=bucket, Key="r/0")["Body"].read() == b"merged"
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    return [obj["Key"] for obj in listed]


def test_a_write_replacing_a_run_removes_it_in_the_same_step(tmp_path: Path) -> None:
    with store(tmp_path) as settings:
        assert replaced_keys_left(settings) == ["other/2", "r/0", "r/4"]
        head = s3_client(settings).head_object(Bucket=settings.store_bucket, Key="r/0")
        assert REPLACES_HEADER not in head["Metadata"]  # an instruction, not kept with the object
        with pytest.raises(ClientError):  # gone from disk too, not only from the listing
            s3_client(settings).get_object(Bucket=settings.store_bucket, Key="r/2")
    with store(tmp_path, plain=True) as settings:  # s3rver as shipped keeps them (compaction deletes them after)
        assert replaced_keys_left(settings) == ["other/2", "r/0", "r/1", "r/2", "r/3", "r/4"]
