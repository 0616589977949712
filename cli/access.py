"""`eventpulse access`: provision the warehouse's users, roles, grants, quotas and row policies."""

from __future__ import annotations

import click

access = click.Group("access", help="Warehouse users and access rules (users, roles, grants, row policies).")


@access.command("apply")
@click.option(
    "--tenant",
    "tenants",
    multiple=True,
    help="Tenant to give a role and row policies (repeatable) [default: every tenant holding an API key].",
)
@click.option("--dry-run", is_flag=True, help="Print the statements (password hashes hidden) instead of running them.")
def apply(tenants: tuple[str, ...], dry_run: bool) -> None:
    """Provision the admin, writer and reader users and the tenant roles on a ClickHouse server.

    Connects to EVENTPULSE_WAREHOUSE_URL as the admin user (EVENTPULSE_WAREHOUSE_ADMIN_*, the
    credentials file, or EVENTPULSE_WAREHOUSE_USER/PASSWORD for a fresh server's bootstrap user).
    Each role's password comes from EVENTPULSE_WAREHOUSE_<ROLE>_PASSWORD or the credentials file.
    Idempotent: run it again after adding tenants or rotating passwords.
    """
    from eventpulse.access.credentials import ROLES
    from eventpulse.access.provision import known_tenants, plan_for, redact, render
    from eventpulse.settings import Settings
    from eventpulse.warehouse.client import create_client

    settings = Settings()
    warehouse = settings.warehouse
    has_file = warehouse.credentials_file is not None and warehouse.credentials_file.exists()
    missing = [role for role in ROLES if getattr(warehouse, f"{role}_password") is None and not has_file]
    if missing:
        names = ", ".join(f"EVENTPULSE_WAREHOUSE_{role.upper()}_PASSWORD" for role in missing)
        raise click.UsageError(f"no password for {', '.join(missing)}: set {names} or a credentials file")
    users = [warehouse.credentials(role) for role in ROLES]
    client = create_client(warehouse, role="admin")
    try:
        plan = plan_for(client, warehouse.database, users, tenants or known_tenants(client), settings.access)
        statements = render(plan)
        if dry_run:
            click.echo(";\n".join(redact(statements)) + ";")
            return
        for statement in statements:
            client.command(statement)
    finally:
        client.close()
    click.echo(f"access applied: {len(users)} users, {len(plan.tenants)} tenant roles, {len(statements)} statements")


@access.command("rotate")
@click.option(
    "--role",
    "roles",
    multiple=True,
    type=click.Choice(["admin", "writer", "reader"]),
    help="Role whose password to change (repeatable) [default: all three].",
)
def rotate(roles: tuple[str, ...]) -> None:
    """New random passwords in the local stack's users file (the warehouse server takes them at
    its next request; restart the other services so they read them)."""
    from eventpulse.access.credentials import ROLES, rotate_users_file
    from eventpulse.settings import Settings

    path = Settings().warehouse.credentials_file
    if path is None or not path.exists():
        raise click.UsageError(f"no users file at {path}: start the stack once (eventpulse up) to generate it")
    rotate_users_file(path, tuple(roles) or ROLES)  # type: ignore[arg-type]
    click.echo(f"rotated {', '.join(roles or ROLES)} in {path}")
