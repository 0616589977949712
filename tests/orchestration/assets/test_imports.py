"""Files arriving under an S3 prefix (a real s3rver, the local stack's object store) are found by the sensor,
imported by the `imported_file` asset onto the real broker, and land once in the warehouse."""

import gzip
import io
import json
import subprocess
import time

import dagster as dg
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from cli.main import cli
from devstack.broker.objectstore import object_store_argv, s3_client
from devstack.traffic.import_files import event_table
from eventpulse.config.broker import BrokerSettings
from eventpulse.warehouse.client import create_client
from orchestration.assets.imports import IMPORT_FILES, imported_file
from orchestration.resources import (
    ArchiveResource,
    BrokerResource,
    ImportResource,
    PlatformResource,
    WarehouseResource,
)
from orchestration.sensors.imports import import_files_sensor
from tests.support.pipeline import run_flow_until_drained
from tests.support.services import free_port, stop

pytestmark = pytest.mark.integration


@pytest.fixture
def s3rver(tmp_path):
    settings = BrokerSettings(store_port=free_port(), store_bucket="imports")
    upload = s3_client(settings).put_object
    log = (tmp_path / "s3rver.log").open("ab")
    proc = subprocess.Popen(object_store_argv(settings, tmp_path / "s3"), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    archive = ArchiveResource(
        s3_endpoint_url=settings.store_endpoint(), s3_access_key_id="S3RVER", s3_secret_access_key="S3RVER"
    )
    while True:
        try:
            archive.filesystem("s3://imports")[0].get_file_info("imports")
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
            time.sleep(0.2)
    yield archive, upload
    stop(proc)
    log.close()


def test_arrived_files_are_imported_once(s3rver, broker_settings, warehouse, tmp_path) -> None:
    """Files are uploaded with boto3 (pyarrow's own S3 writes reach s3rver with aws-chunked framing it stores
    as is); the sensor and the asset read them with pyarrow's S3 filesystem, as the CLI does."""
    archive, upload = s3rver
    now = time.time_ns() // 1_000_000
    parquet = io.BytesIO()
    pq.write_table(event_table(1500, now, shape="nested", users=100), parquet)
    lines = [json.dumps({"type": "t", "source": "s3", "timestamp": now, "data": {"user_id": i}}) for i in range(20)]
    lines.append('{"type": "t"}')  # no source, no timestamp: a dead letter
    for key, body in [
        ("incoming/2026/day.parquet", parquet.getvalue()),
        ("incoming/2026/hooks.ndjson.gz", gzip.compress("\n".join(lines).encode())),
        ("incoming/readme.txt", b"not an import file"),
    ]:
        upload(Bucket="imports", Key=key, Body=body)
    resources = {
        "imports": ImportResource(url="s3://imports/incoming", tenant="s3tenant", checkpoint_dir=str(tmp_path / "cp")),
        "archive": archive,
        "broker": BrokerResource(bootstrap=broker_settings.bootstrap, events_topic=broker_settings.events_topic),
        "warehouse": WarehouseResource(url=warehouse.url, database=warehouse.database),
        "platform": PlatformResource(data_dir=str(tmp_path)),
    }
    instance = dg.DagsterInstance.ephemeral()
    result = import_files_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert isinstance(result, dg.SensorResult)
    keys = sorted(r.partition_key for r in result.run_requests or [])
    assert keys == ["2026/day.parquet", "2026/hooks.ndjson.gz"]
    instance.add_dynamic_partitions(IMPORT_FILES.name or "", keys)
    again = import_files_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert isinstance(again, dg.SkipReason)  # nothing new: the files are not requested twice

    for key in keys:
        run = dg.materialize([imported_file], partition_key=key, resources=resources, instance=instance)
        assert run.success
    materialized = [m.metadata for m in run.asset_materializations_for_node("imported_file")]
    assert materialized[0]["accepted"].value == 20 and materialized[0]["rejected"].value == 1

    # The CLI reads the same prefix (s3://, the archive's S3 settings): the same ids again, deduplicated below.
    env = {
        "EVENTPULSE_BROKER_BOOTSTRAP": broker_settings.bootstrap,
        "EVENTPULSE_BROKER_EVENTS_TOPIC": broker_settings.events_topic,
        **warehouse.environment(),
        "EVENTPULSE_IMPORT_CHECKPOINT_DIR": str(tmp_path / "cli-cp"),
        "EVENTPULSE_ORCHESTRATION_S3_ENDPOINT_URL": archive.s3_endpoint_url or "",
        "EVENTPULSE_ORCHESTRATION_S3_ACCESS_KEY_ID": "S3RVER",
        "EVENTPULSE_ORCHESTRATION_S3_SECRET_ACCESS_KEY": "S3RVER",
    }
    args = ["import", "s3://imports/incoming", "--tenant", "s3tenant", "--no-progress"]
    cli_run = CliRunner().invoke(cli, args, env=env)
    assert cli_run.exit_code == 0 and "imported 2 file(s): 1520 accepted, 1 refused" in cli_run.output, cli_run.output

    run_flow_until_drained(broker_settings, warehouse, log=tmp_path / "flow.log")
    client = create_client(warehouse, role="admin")
    try:
        stored = client.query("SELECT count(), uniqExact(id) FROM events FINAL WHERE tenant = 's3tenant'").result_rows
        refused = client.query("SELECT reason, field FROM dead_letters FINAL WHERE stage = 'import'").result_rows
    finally:
        client.close()
    assert stored == [(1520, 1520)]
    assert refused == [("missing_field", "source")]
