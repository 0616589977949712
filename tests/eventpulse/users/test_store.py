"""Users: argon2id hashes (never the password), roles tied to tenants, sign-ins checked and recorded."""

import pytest

from eventpulse.audit import FAILURE, SUCCESS, Action, Actor, AuditQuery, AuditWriter, read_audit
from eventpulse.users import UserError, add_user, authenticate, ensure_admin, list_users, remove_user

PASSWORD = "correct horse battery"


@pytest.fixture
def audit(warehouse_client) -> AuditWriter:
    return AuditWriter(warehouse_client, Actor("admin", "platform_admin"))


def test_users_are_stored_with_argon2id_hashes_and_sign_in(warehouse_client, audit):
    add_user(warehouse_client, "ana", "tenant_analyst", PASSWORD, tenant="acme", audit=audit)
    add_user(warehouse_client, "ops", "operator", PASSWORD + "!", audit=audit)
    stored = warehouse_client.query("SELECT password_hash FROM users FINAL WHERE username = 'ana'").result_rows[0][0]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert [(u.username, u.role, u.tenant) for u in list_users(warehouse_client)] == [
        ("ana", "tenant_analyst", "acme"),
        ("ops", "operator", ""),
    ]
    assert [u.username for u in list_users(warehouse_client, "acme")] == ["ana"]

    user = authenticate(warehouse_client, "ana", PASSWORD, audit=audit, source="192.0.2.4")
    assert user is not None and user.tenant == "acme"
    assert authenticate(warehouse_client, "ana", PASSWORD + "x", audit=audit) is None
    assert authenticate(warehouse_client, "nobody", PASSWORD, audit=audit) is None
    ok, wrong, unknown = reversed(read_audit(warehouse_client, AuditQuery(action=Action.SIGN_IN)))
    assert (ok.result, ok.actor, ok.role, ok.tenant, ok.source) == (
        SUCCESS,
        "ana",
        "tenant_analyst",
        "acme",
        "192.0.2.4",
    )
    assert (wrong.result, wrong.role, unknown.result, unknown.target) == (FAILURE, "anonymous", FAILURE, "nobody")

    remove_user(warehouse_client, "ana", audit=audit)
    assert authenticate(warehouse_client, "ana", PASSWORD, audit=audit) is None
    assert [u.username for u in list_users(warehouse_client)] == ["ops"]
    assert PASSWORD not in str([e.parameters for e in read_audit(warehouse_client, AuditQuery(limit=1000))])


@pytest.mark.parametrize(
    ("username", "role", "tenant", "password", "reason"),
    [
        ("ana", "tenant_analyst", "", PASSWORD, "belongs to one tenant"),
        ("ops", "operator", "acme", PASSWORD, "covers every tenant"),
        ("ana", "superuser", "acme", PASSWORD, "unknown role"),
        ("ana", "tenant_admin", "acme", "short", "at least 12"),
        ("bad name", "operator", "", PASSWORD, "user names"),
    ],
)
def test_bad_users_are_refused_and_recorded_as_failures(
    warehouse_client, audit, username, role, tenant, password, reason
):
    with pytest.raises(UserError, match=reason):
        add_user(warehouse_client, username, role, password, tenant=tenant, audit=audit)
    (row,) = read_audit(warehouse_client, AuditQuery(action=Action.USER_ADD))
    assert (row.result, row.target) == (FAILURE, username) and reason in row.error
    assert warehouse_client.query("SELECT count() FROM users").result_rows[0][0] == 0


def test_ensure_admin_creates_one_platform_admin_once(warehouse_client):
    audit = AuditWriter(warehouse_client, Actor.local_cli())
    password = ensure_admin(warehouse_client, "admin", audit=audit)
    assert password is not None and len(password) >= 12
    user = authenticate(warehouse_client, "admin", password, audit=audit)
    assert user is not None and user.role == "platform_admin" and user.tenant == ""
    assert ensure_admin(warehouse_client, "admin", audit=audit) is None  # printed once: nothing new later
    assert authenticate(warehouse_client, "admin", password, audit=audit) is not None  # the password is kept
