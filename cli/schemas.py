"""`eventpulse schemas register|list|show|check|set-mode`: the schema registry (JSON Schemas of events' ``data``).

Like ``eventpulse webhooks``: written with the warehouse's admin credentials, each change in ``audit_log``.
A schema file is JSON or YAML; gateways and the dataflow apply a new version within
``EVENTPULSE_SCHEMAS_REFRESH_S``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
import yaml
from clickhouse_connect.driver.client import Client

from eventpulse.audit import Actor, AuditWriter
from eventpulse.schemas import store
from eventpulse.schemas.compat import Mode
from eventpulse.settings import Settings
from eventpulse.warehouse.client import create_client

T = TypeVar("T")
_MODES = click.Choice([m.value for m in Mode])


def _load(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise click.BadParameter(f"{path}: {exc}") from exc


def _admin(work: Callable[[Client, Settings], T]) -> T:
    settings = Settings()
    client = create_client(settings.warehouse, role="admin")
    try:
        return work(client, settings)
    except store.SchemaError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        client.close()


def _audit(client: Client) -> AuditWriter:
    return AuditWriter(client, Actor.local_cli("eventpulse schemas"))


_SCHEMA_FILE = click.argument("schema_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))


@click.group("schemas")
def schemas() -> None:
    """Register and inspect the JSON Schemas (draft 2020-12) events' `data` is checked against."""


@schemas.command("register")
@click.argument("tenant")
@click.argument("event_type")
@_SCHEMA_FILE
def register(tenant: str, event_type: str, schema_file: Path) -> None:
    """Register SCHEMA_FILE as the next version of TENANT's EVENT_TYPE (refused if incompatible)."""
    schema = _load(schema_file)

    def work(client: Client, settings: Settings) -> tuple[store.SchemaVersion, bool]:
        config = settings.schemas
        return store.register_schema(
            client,
            tenant,
            event_type,
            schema,
            default_mode=config.default_compatibility,
            max_bytes=config.max_schema_bytes,
            created_by=Actor.local_cli().name,
            audit=_audit(client),
        )

    try:
        row, new = _admin(work)
    except store.IncompatibleSchema as exc:
        click.echo(f"refused: not {exc.mode.value}-compatible with the registered schema(s):", err=True)
        for reason in exc.reasons:
            click.echo(f"  {reason}", err=True)
        raise SystemExit(1) from exc
    state = "registered" if new else "unchanged: already the latest"
    click.echo(f"{tenant}/{event_type} version {row.version} ({state})")


@schemas.command("list")
@click.argument("tenant", required=False)
def list_(tenant: str | None) -> None:
    """The latest version of each event type's schema (of TENANT, or of every tenant)."""

    def work(client: Client, settings: Settings) -> list[tuple[str, str, int, str, str]]:
        modes = store.list_modes(client, tenant)
        default = Mode(settings.schemas.default_compatibility)
        return [
            (r.tenant, r.event_type, r.version, modes.get((r.tenant, r.event_type), default).value, r.fingerprint)
            for r in store.latest_versions(client, tenant)
        ]

    click.echo(f"{'TENANT':20} {'TYPE':28} {'VERSION':>7} {'MODE':20} FINGERPRINT")
    for t, kind, version, mode, digest in _admin(work):
        click.echo(f"{t:20} {kind:28} {version:>7} {mode:20} {digest[:16]}")


@schemas.command("show")
@click.argument("tenant")
@click.argument("event_type")
@click.option("--version", "version", type=int, help="This version (default: the latest).")
@click.option("--all", "show_all", is_flag=True, help="Every version.")
def show(tenant: str, event_type: str, version: int | None, show_all: bool) -> None:
    """Print the schema of TENANT's EVENT_TYPE (JSON)."""
    rows = _admin(lambda client, _: store.list_versions(client, tenant, event_type))
    if version is not None:
        rows = [r for r in rows if r.version == version]
    elif not show_all:
        rows = rows[-1:]
    if not rows:
        raise click.ClickException(
            f"no schema registered for {tenant}/{event_type}" + (f" v{version}" if version else "")
        )
    for row in rows:
        click.echo(f"# {tenant}/{event_type} version {row.version} ({row.created_at}, {row.created_by or '?'})")
        click.echo(orjson.dumps(row.schema, option=orjson.OPT_INDENT_2).decode())


@schemas.command("check")
@click.argument("tenant")
@click.argument("event_type")
@_SCHEMA_FILE
def check(tenant: str, event_type: str, schema_file: Path) -> None:
    """Whether SCHEMA_FILE could be registered now (exit status 1 if not); nothing is stored."""
    schema = _load(schema_file)

    def work(client: Client, settings: Settings) -> tuple[Mode, list[str], int]:
        config = settings.schemas
        return store.registration_check(
            client,
            tenant,
            event_type,
            schema,
            default_mode=config.default_compatibility,
            max_bytes=config.max_schema_bytes,
        )

    mode, reasons, _ = _admin(work)
    if reasons:
        click.echo(f"not {mode.value}-compatible:", err=True)
        for reason in reasons:
            click.echo(f"  {reason}", err=True)
        raise SystemExit(1)
    click.echo(f"compatible ({mode.value})")


@schemas.command("set-mode")
@click.argument("tenant")
@click.argument("event_type")
@click.argument("mode", type=_MODES)
def set_mode(tenant: str, event_type: str, mode: str) -> None:
    """Set the compatibility mode of TENANT's EVENT_TYPE (applies to its next registration)."""
    chosen = _admin(lambda client, _: store.set_mode(client, tenant, event_type, mode, audit=_audit(client)))
    click.echo(f"{tenant}/{event_type}: {chosen.value}")
