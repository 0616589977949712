"""`eventpulse users add|list|remove`: the people who sign in (argon2id hashes in ``users``).

Run with the warehouse's admin credentials (``EVENTPULSE_WAREHOUSE_USER``/``_PASSWORD``): only the admin
user may write the table on a provisioned ClickHouse. Every change is recorded in ``audit_log``.
"""

import sys

import click

from eventpulse.audit import Actor, AuditWriter
from eventpulse.settings import Settings
from eventpulse.users import USER_ROLES, UserError, add_user, ensure_admin, list_users, remove_user
from eventpulse.warehouse.client import create_client


def _client():
    return create_client(Settings().warehouse, role="admin")


def _audit(client) -> AuditWriter:
    return AuditWriter(client, Actor.local_cli("eventpulse users"))


@click.group("users")
def users() -> None:
    """Add, list and remove the platform's users (roles: platform_admin, operator, tenant_admin, tenant_analyst)."""


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(USER_ROLES), required=True, help="What the user may do.")
@click.option("--tenant", default="", help="The tenant of a tenant_admin or tenant_analyst.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (else prompt).")
def add(username: str, role: str, tenant: str, password_stdin: bool) -> None:
    """Add USERNAME (or give an existing user a new role and password)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    client = _client()
    try:
        user = add_user(client, username, role, password, tenant=tenant, audit=_audit(client))
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        client.close()
    click.echo(f"user {user.username!r}: {user.role}" + (f" of tenant {user.tenant!r}" if user.tenant else ""))


@users.command("list")
@click.option("--tenant", default=None, help="Only this tenant's users.")
def list_(tenant: str | None) -> None:
    """List the current users."""
    client = _client()
    try:
        rows = list_users(client, tenant)
    finally:
        client.close()
    click.echo(f"{'USER':32} {'ROLE':16} {'TENANT':20} CREATED")
    for user in rows:
        created = user.created_at.strftime("%Y-%m-%d %H:%M:%S") if user.created_at else ""
        click.echo(f"{user.username:32} {user.role:16} {user.tenant or '*':20} {created}")


@users.command("remove")
@click.argument("username")
def remove(username: str) -> None:
    """Remove USERNAME (they can no longer sign in)."""
    client = _client()
    try:
        remove_user(client, username, audit=_audit(client))
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        client.close()
    click.echo(f"removed user {username!r}")


@users.command("bootstrap")
@click.option("--username", default="admin", show_default=True, help="Name of the platform admin to create.")
def bootstrap(username: str) -> None:
    """Create a platform admin with a random password unless one exists, and print the password once.

    `eventpulse up` runs this after the migrations, so the dashboards can be signed in to on the
    first run; later runs print nothing new (set a password with `eventpulse users add`).
    """
    client = _client()
    try:
        password = ensure_admin(client, username, audit=_audit(client))
    finally:
        client.close()
    if password is None:
        click.echo("a platform admin exists: nothing to do (eventpulse users list)")
    else:
        click.echo(f"dashboard sign-in: user {username!r}, password {password} (shown once; change it with")
        click.echo(f"  eventpulse users add {username} --role platform_admin)")
