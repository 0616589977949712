"""The archive on S3-compatible storage: a real S3 server (moto's, over HTTP), not mocked calls."""

from collections.abc import Iterator
from datetime import date

import boto3
import dagster as dg
import pytest
from moto.server import ThreadedMotoServer

from orchestration.assets.aggregates import window_aggregates_batch
from orchestration.assets.archive import events_archive
from orchestration.assets.replay import events_replay
from orchestration.assets.retention import raw_events_retention
from orchestration.resources import ArchiveResource
from tests.orchestration.rawdata import day_start_ms, insert_raw, raw_rows
from tests.support.services import free_port

DAY = date(2026, 9, 14)
BUCKET = "eventpulse-archive"
AGGREGATES = "SELECT * EXCEPT (version, emitted_at) FROM window_aggregates FINAL ORDER BY ALL"


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1"
    ).create_bucket(Bucket=BUCKET)
    try:
        yield endpoint
    finally:
        server.stop()


def test_archive_retention_and_replay_on_s3(s3_endpoint, resources, warehouse_client):
    resources = {
        **resources,
        "archive": ArchiveResource(
            url=f"s3://{BUCKET}/archive",
            s3_endpoint_url=s3_endpoint,
            s3_access_key_id="k",
            s3_secret_access_key="s",
            s3_region="us-east-1",
        ),
    }
    insert_raw(warehouse_client, raw_rows(700, day_start_ms(DAY, 8), seed=8))
    assert dg.materialize([window_aggregates_batch], partition_key=DAY.isoformat(), resources=resources).success
    published = warehouse_client.query(AGGREGATES).result_rows

    assert dg.materialize([events_archive], partition_key=DAY.isoformat(), resources=resources).success
    s3 = boto3.client(
        "s3", endpoint_url=s3_endpoint, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1"
    )
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    parts = [k for k in keys if k.endswith(".parquet")]
    assert parts and all(k.startswith("archive/tenant=") and f"/date={DAY}/part-" in k for k in parts)
    assert f"archive/_manifests/date={DAY}.json" in keys

    assert dg.materialize([raw_events_retention], resources=resources).success
    assert warehouse_client.command("SELECT count() FROM events") == 0

    warehouse_client.command("TRUNCATE TABLE window_aggregates")
    assert dg.materialize([events_replay], partition_key=DAY.isoformat(), resources=resources).success
    assert warehouse_client.query(AGGREGATES).result_rows == published

    # A file deleted from the bucket makes the day un-replayable, loudly.
    s3.delete_object(Bucket=BUCKET, Key=parts[0])
    broken = dg.materialize([events_replay], partition_key=DAY.isoformat(), resources=resources, raise_on_error=False)
    assert not broken.success
