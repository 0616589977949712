"""`eventpulse keys create|list|revoke`: the gateway's API keys (stored hashed in ``api_keys``)."""

import click

from eventpulse.api_keys import ALL_SCOPES, DEFAULT_SCOPES, create_key, list_keys, revoke_key
from eventpulse.audit import Actor, AuditWriter
from eventpulse.settings import Settings
from eventpulse.warehouse.client import create_client


def _client():
    return create_client(Settings().warehouse, role="admin")


def _audit(client) -> AuditWriter:
    """Key changes are recorded in ``audit_log`` before the command reports them."""
    return AuditWriter(client, Actor.local_cli("eventpulse keys"))


@click.group("keys")
def keys() -> None:
    """Create, list and revoke the API keys tenants use with the gateway."""


@keys.command("create")
@click.argument("tenant")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(ALL_SCOPES),
    help=f"Repeat for several (default: {', '.join(DEFAULT_SCOPES)}).",
)
@click.option("--rate", type=float, default=0.0, help="Events/s for this tenant (0: the gateway default).")
@click.option("--burst", type=int, default=0, help="Burst in events (0: the gateway default).")
@click.option("--description", default="", help="A note: who or what uses the key.")
def create(tenant: str, scopes: tuple[str, ...], rate: float, burst: int, description: str) -> None:
    """Create a key for TENANT and print it (once: only its hash is stored)."""
    client = _client()
    try:
        row, key = create_key(
            client,
            tenant,
            scopes or DEFAULT_SCOPES,
            rate_per_s=rate,
            burst=burst,
            description=description,
            audit=_audit(client),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    finally:
        client.close()
    click.echo(f"created key {row.key_id} for tenant {tenant!r} (scopes: {', '.join(sorted(row.scopes))})", err=True)
    click.echo("store it now, it is not shown again:", err=True)
    click.echo(key)


@keys.command("list")
@click.argument("tenant", required=False)
@click.option("--all", "show_all", is_flag=True, help="Include revoked keys.")
def list_(tenant: str | None, show_all: bool) -> None:
    """List keys (of TENANT, or of every tenant)."""
    client = _client()
    try:
        rows = list_keys(client, tenant)
    finally:
        client.close()
    click.echo(f"{'KEY ID':14} {'TENANT':20} {'SCOPES':22} {'RATE':>8} {'BURST':>8} {'STATE':8} CREATED")
    for row in rows:
        if row.revoked and not show_all:
            continue
        state = "revoked" if row.revoked else "active"
        created = row.created_at.strftime("%Y-%m-%d %H:%M:%S") if row.created_at else ""
        rate = f"{row.rate_per_s:g}" if row.rate_per_s else "default"
        burst = str(row.burst) if row.burst else "default"
        click.echo(
            f"{row.key_id:14} {row.tenant:20} {','.join(sorted(row.scopes)):22} {rate:>8} {burst:>8} {state:8} {created}"
        )


@keys.command("revoke")
@click.argument("tenant")
@click.argument("key_ids", nargs=-1)
@click.option("--all", "revoke_all", is_flag=True, help="Revoke every key of TENANT.")
def revoke(tenant: str, key_ids: tuple[str, ...], revoke_all: bool) -> None:
    """Revoke keys of TENANT by id (gateways stop accepting them within seconds)."""
    if not key_ids and not revoke_all:
        raise click.UsageError("name the KEY_IDS to revoke, or pass --all")
    client = _client()
    try:
        if revoke_all:
            key_ids = tuple(k.key_id for k in list_keys(client, tenant) if not k.revoked)
        audit = _audit(client)
        missing = [key_id for key_id in key_ids if not revoke_key(client, tenant, key_id, audit=audit)]
    finally:
        client.close()
    for key_id in key_ids:
        if key_id not in missing:
            click.echo(f"revoked {key_id}")
    if missing:
        raise click.ClickException(f"no active key of tenant {tenant!r} with id: {', '.join(missing)}")
