"""Files arriving under the import prefix become `imported_file` partitions and runs."""

import dagster as dg

from eventpulse.imports.files import list_files
from orchestration.assets.imports import IMPORT_FILES, imported_file
from orchestration.resources import ArchiveResource, ImportResource

import_job = dg.define_asset_job(
    "import_job",
    selection=[imported_file],
    partitions_def=IMPORT_FILES,
    description="Import one arrived file (launched by import_files_sensor).",
)


@dg.sensor(
    job=import_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Lists EVENTPULSE_IMPORT_S3_URL; each import file (.ndjson/.jsonl[.gz|.zst], .csv[.gz|.zst], .parquet) not "
        "seen before becomes a partition of imported_file and a run. A file rewritten with other content (another "
        "size) is imported again; its new rows get new ids."
    ),
)
def import_files_sensor(
    context: dg.SensorEvaluationContext, imports: ImportResource, archive: ArchiveResource
) -> dg.SensorResult | dg.SkipReason:
    url = imports.settings().s3_url
    if not url:
        return dg.SkipReason("EVENTPULSE_IMPORT_S3_URL is not set")
    filesystem, root = archive.filesystem(url)
    files = list_files(filesystem, root, url)
    known = set(context.instance.get_dynamic_partitions(IMPORT_FILES.name or "import_files"))
    keys = {file.path[len(root) :].lstrip("/"): file for file in files}
    new = sorted(key for key in keys if key not in known)
    requests = [
        dg.RunRequest(run_key=f"{key}:{keys[key].size}", partition_key=key, tags={"eventpulse/import": key})
        for key in new
    ]
    if not new:
        return dg.SkipReason(f"no new files under {url} ({len(files)} known)")
    return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=[IMPORT_FILES.build_add_request(new)])
