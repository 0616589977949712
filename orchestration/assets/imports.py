"""`imported_file`: one file that arrived under the import prefix, imported onto the events topic.

One dynamic partition per file (its path under the prefix), added by `import_files_sensor`. The
run imports it with `eventpulse.imports` (the CLI's validation, columnar path, dead letters and
checkpoints, under ``EVENTPULSE_IMPORT_TENANT``); a retried run resumes from the file's
checkpoint, and its ids (``<file identity>-<row>``) make any overlap harmless.
"""

import dagster as dg

from eventpulse.imports.files import list_files
from eventpulse.imports.runner import ImportFailed
from eventpulse.imports.service import importer
from orchestration.assets.sources import RAW_EVENTS
from orchestration.resources import (
    ArchiveResource,
    BrokerResource,
    ImportResource,
    PlatformResource,
    WarehouseResource,
)

IMPORT_FILES = dg.DynamicPartitionsDefinition(name="import_files")


@dg.asset(
    partitions_def=IMPORT_FILES,
    group_name="imports",
    kinds={"s3", "kafka"},
    description=(
        "Import one file (NDJSON, CSV or Parquet) that arrived under EVENTPULSE_IMPORT_S3_URL onto the events "
        "topic, through the gateway's validation, for EVENTPULSE_IMPORT_TENANT; refused rows go to dead letters "
        f"(stage `import`). The dataflow then writes the events to {RAW_EVENTS.key.to_user_string()}."
    ),
)
def imported_file(
    context: dg.AssetExecutionContext,
    imports: ImportResource,
    archive: ArchiveResource,
    broker: BrokerResource,
    warehouse: WarehouseResource,
    platform: PlatformResource,
) -> dg.MaterializeResult:
    wanted = imports.settings()
    if not wanted.s3_url or not wanted.tenant:
        raise dg.Failure("set EVENTPULSE_IMPORT_S3_URL and EVENTPULSE_IMPORT_TENANT")
    url = f"{wanted.s3_url.rstrip('/')}/{context.partition_key}"
    filesystem, path = archive.filesystem(url)
    (file,) = list_files(filesystem, path, url)
    base = platform.settings()
    settings = base.model_copy(
        update={"broker": broker.settings(), "warehouse": warehouse.settings(), "imports": wanted}
    )
    with importer(settings, wanted.tenant) as run:
        try:
            result = run.import_file(file)
        except ImportFailed as exc:
            raise dg.Failure(description=f"{exc}; a retry resumes from the checkpoint") from exc
    context.log.info(f"{url}: {result.accepted} accepted, {result.rejected} refused (resumed at {result.resumed_at})")
    return dg.MaterializeResult(
        metadata={
            "url": url,
            "file_identity": result.identity,
            "accepted": result.accepted,
            "rejected": result.rejected,
            "resumed_at_row": result.resumed_at,
        }
    )
