"""`eventpulse migrate`: bring the warehouse schema up to date."""

import click

from eventpulse.audit import Actor
from eventpulse.settings import Settings
from eventpulse.warehouse import migrator
from eventpulse.warehouse.client import create_client
from eventpulse.warehouse.schema import migrate as run_migrations


@click.command("migrate")
@click.option("--database", default=None, help="Database to migrate (default: EVENTPULSE_WAREHOUSE_DATABASE).")
@click.option("--status", "show_status", is_flag=True, help="Only show which migrations are applied.")
def migrate(database: str | None, show_status: bool) -> None:
    """Apply pending warehouse migrations in order (safe to run again: it changes nothing)."""
    settings = Settings().warehouse
    db = database or settings.database
    if show_status:
        client = create_client(settings, role="admin", database=db)
        drifted = False
        for item in migrator.status(client, migrator.load_migrations(), settings.cluster):
            state = "DRIFTED" if item.drifted else ("applied" if item.applied else "pending")
            drifted |= item.drifted
            click.echo(f"{item.migration.version:04d}_{item.migration.name:40} {state}")
        if drifted:
            raise click.ClickException("an applied migration file has changed since it ran")
        return
    try:
        applied = run_migrations(settings, db, actor=Actor.local_cli("eventpulse migrate"))
    except migrator.MigrationError as exc:
        raise click.ClickException(str(exc)) from exc
    for m in applied:
        click.echo(f"applied {m.version:04d}_{m.name}")
    click.echo(f"warehouse database {db!r} is up to date ({len(applied)} applied now)")
