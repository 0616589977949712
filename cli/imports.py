"""`eventpulse import`: files of events (NDJSON, CSV, Parquet; local or s3://) onto the events topic."""

from __future__ import annotations

import time
from collections.abc import Callable

import click
from tqdm import tqdm

from eventpulse.imports.files import filesystem_of, list_files
from eventpulse.imports.reading import parse_mapping, total_rows
from eventpulse.imports.runner import ImportFailed
from eventpulse.imports.service import importer
from eventpulse.settings import Settings


def _advance(bar: tqdm) -> Callable[[int], None]:
    """Move ``bar`` to the acknowledged position it is told."""
    return lambda rows: bar.update(rows - bar.n)


@click.command("import")
@click.argument("targets", nargs=-1, required=True)
@click.option("--tenant", required=True, help="Tenant the events are filed under (a body never names it).")
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="FIELD=COLUMN",
    help="CSV/Parquet column COLUMN is the event's FIELD (timestamp, type, source, id, data.KEY); repeatable.",
)
@click.option("--restart", is_flag=True, help="Ignore checkpoints: import every file from its first row.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar per file.")
def import_files(
    targets: tuple[str, ...], tenant: str, mapping: tuple[str, ...], restart: bool, progress: bool
) -> None:
    """Import TARGETS (files, directories or s3://bucket/prefix) through the gateway's validation.

    A file's checkpoint advances only past rows the broker acknowledged; run the same command again
    after a crash and it resumes there. Refused rows go to dead letters (stage ``import``).
    """
    settings = Settings()
    columns = parse_mapping(mapping)
    files = []
    for target in targets:
        filesystem, path = filesystem_of(target, settings.orchestration)
        files += list_files(filesystem, path, target)
    if not files:
        raise click.ClickException("no import files found (.ndjson/.jsonl[.gz|.zst], .csv[.gz|.zst], .parquet)")
    started, total_accepted, total_rejected = time.monotonic(), 0, 0
    for file in files:
        bar = tqdm(total=total_rows(file), desc=file.url, unit="row", unit_scale=True, disable=not progress or None)
        with bar, importer(settings, tenant, progress=_advance(bar)) as run:
            try:
                result = run.import_file(file, columns, restart=restart)
            except ImportFailed as exc:
                raise click.ClickException(f"{exc}; run the command again to resume") from exc
        if result.skipped:
            click.echo(f"{file.url}: already imported ({result.accepted} accepted, {result.rejected} refused)")
            continue
        resumed = f", resumed at row {result.resumed_at}" if result.resumed_at else ""
        click.echo(f"{file.url}: {result.accepted} accepted, {result.rejected} refused{resumed}")
        total_accepted += result.accepted
        total_rejected += result.rejected
    seconds = time.monotonic() - started
    click.echo(f"imported {len(files)} file(s): {total_accepted} accepted, {total_rejected} refused in {seconds:.1f} s")
