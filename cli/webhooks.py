"""`eventpulse webhooks create|list|update|revoke`: inbound webhook sources (``POST /api/webhooks/<source>``).

Like ``eventpulse keys``: written with the warehouse's admin credentials, each change in ``audit_log``.
A source's signing secret is printed once and stored encrypted (``EVENTPULSE_WEBHOOKS_SECRETS_KEY``,
or on the local stack a key file this command creates under ``EVENTPULSE_DATA_DIR``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import yaml

from eventpulse.audit import Actor, AuditWriter
from eventpulse.settings import Settings
from eventpulse.warehouse.client import create_client
from eventpulse.webhooks.mapping import MappingError
from eventpulse.webhooks.secrets import SecretsUnavailable, secret_box
from eventpulse.webhooks.store import SourceError, list_sources, register_source, revoke_source, update_source

_MAPPING_HELP = "The mapping (YAML or JSON): type, timestamp, user_id, id, source, data, keep_payload."


def _load_mapping(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise click.BadParameter(f"{path}: {exc}") from exc


def _secret_from_stdin(flag: bool) -> str | None:
    if not flag:
        return None
    secret = sys.stdin.readline().strip()
    if len(secret) < 16:
        raise click.BadParameter("a signing secret has at least 16 characters")
    return secret


@click.group("webhooks")
def webhooks() -> None:
    """Register, list, change and revoke the webhook sources third parties deliver to."""


@webhooks.command("create")
@click.argument("tenant")
@click.argument("source")
@click.option(
    "--mapping", "mapping_file", type=click.Path(exists=True, path_type=Path), required=True, help=_MAPPING_HELP
)
@click.option("--secret-stdin", is_flag=True, help="Read the signing secret from stdin (the third party's own).")
@click.option("--description", default="", help="A note: which third party sends it.")
def create(tenant: str, source: str, mapping_file: Path, secret_stdin: bool, description: str) -> None:
    """Register SOURCE for TENANT and print its signing secret (once: it is stored encrypted)."""
    settings = Settings()
    mapping = _load_mapping(mapping_file)
    secret = _secret_from_stdin(secret_stdin)
    client = create_client(settings.warehouse, role="admin")
    try:
        box = secret_box(settings, create=True)
        _, secret = register_source(
            client, box, tenant, source, mapping, secret=secret, description=description, audit=_audit(client)
        )
    except (SourceError, MappingError, SecretsUnavailable) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        client.close()
    click.echo(f"webhook source {source!r} of tenant {tenant!r}: POST /api/webhooks/{source}", err=True)
    if not secret_stdin:
        click.echo("its signing secret; give it to the sender now, it is not shown again:", err=True)
        click.echo(secret)


@webhooks.command("list")
@click.argument("tenant", required=False)
@click.option("--all", "show_all", is_flag=True, help="Include revoked sources.")
def list_(tenant: str | None, show_all: bool) -> None:
    """List sources (of TENANT, or of every tenant) with their mappings."""
    client = create_client(Settings().warehouse, role="admin")
    try:
        rows = list_sources(client, tenant)
    finally:
        client.close()
    click.echo(f"{'SOURCE':24} {'TENANT':20} {'STATE':8} MAPPING")
    for row in rows:
        if row.revoked and not show_all:
            continue
        mapping = ", ".join(f"{k}={v}" for k, v in row.mapping.items())
        click.echo(f"{row.source:24} {row.tenant:20} {'revoked' if row.revoked else 'active':8} {mapping}")


@webhooks.command("update")
@click.argument("tenant")
@click.argument("source")
@click.option("--mapping", "mapping_file", type=click.Path(exists=True, path_type=Path), help=_MAPPING_HELP)
@click.option("--rotate-secret", is_flag=True, help="Make a new signing secret (printed once).")
@click.option("--secret-stdin", is_flag=True, help="Set the signing secret read from stdin.")
def update(tenant: str, source: str, mapping_file: Path | None, rotate_secret: bool, secret_stdin: bool) -> None:
    """Change SOURCE's mapping and/or signing secret (gateways use it within seconds)."""
    if mapping_file is None and not rotate_secret and not secret_stdin:
        raise click.UsageError("give --mapping, --rotate-secret or --secret-stdin")
    settings = Settings()
    mapping = _load_mapping(mapping_file) if mapping_file else None
    secret = _secret_from_stdin(secret_stdin)
    client = create_client(settings.warehouse, role="admin")
    try:
        box = secret_box(settings, create=True)
        new = update_source(
            client, box, tenant, source, mapping=mapping, secret=secret, rotate=rotate_secret, audit=_audit(client)
        )
    except (SourceError, MappingError, SecretsUnavailable) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        client.close()
    click.echo(f"updated webhook source {source!r}", err=True)
    if new and rotate_secret:
        click.echo("its new signing secret (not shown again):", err=True)
        click.echo(new)


@webhooks.command("revoke")
@click.argument("tenant")
@click.argument("source")
def revoke(tenant: str, source: str) -> None:
    """Revoke SOURCE of TENANT (gateways refuse its deliveries within seconds)."""
    client = create_client(Settings().warehouse, role="admin")
    try:
        revoke_source(client, tenant, source, audit=_audit(client))
    except SourceError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        client.close()
    click.echo(f"revoked {source}")


def _audit(client: Any) -> AuditWriter:
    return AuditWriter(client, Actor.local_cli("eventpulse webhooks"))
