"""The audit writer and reader against a real warehouse: rows are stored at once, secrets never are."""

from datetime import UTC, datetime, timedelta

import pytest

from eventpulse.audit import FAILURE, SUCCESS, Action, Actor, AuditQuery, AuditWriter, read_audit, record_sign_in
from eventpulse.audit.model import redact


def test_a_recorded_block_is_one_success_row_and_a_raised_one_a_failure_row(warehouse_client):
    writer = AuditWriter(warehouse_client, Actor("ops@example", "operator", source="10.0.0.7"))
    with writer.recorded(Action.RETENTION_RUN, target="events", parameters={"dry_run": True}) as params:
        params["dropped"] = 3
    with pytest.raises(ZeroDivisionError), writer.recorded(Action.RETENTION_RUN, target="events"):
        _ = 1 / 0
    rows = list(reversed(read_audit(warehouse_client, AuditQuery(action="retention"))))
    assert [(r.result, r.actor, r.role, r.source, r.target) for r in rows] == [
        (SUCCESS, "ops@example", "operator", "10.0.0.7", "events"),
        (FAILURE, "ops@example", "operator", "10.0.0.7", "events"),
    ]
    assert rows[0].parameters == {"dry_run": True, "dropped": 3}
    assert rows[1].error.startswith("ZeroDivisionError")
    assert rows[0].request_id and rows[0].request_id != rows[1].request_id


def test_filters_select_by_actor_area_tenant_result_and_time(warehouse_client):
    writer = AuditWriter(warehouse_client, Actor("alice", "tenant_admin", tenant="acme"))
    writer.record(Action.API_KEY_CREATE, target="k1")
    writer.record(Action.API_KEY_REVOKE, target="k1", result=FAILURE, error="no such key")
    writer.record(Action.SQL_QUERY, actor=Actor("bob", "tenant_analyst", tenant="globex"), target="SELECT 1")
    assert {r.action for r in read_audit(warehouse_client, AuditQuery(action="api_key"))} == {
        "api_key.create",
        "api_key.revoke",
    }
    assert [r.target for r in read_audit(warehouse_client, AuditQuery(actor="bob"))] == ["SELECT 1"]
    assert [r.actor for r in read_audit(warehouse_client, AuditQuery(tenant="globex"))] == ["bob"]
    assert [r.action for r in read_audit(warehouse_client, AuditQuery(result=FAILURE))] == ["api_key.revoke"]
    future = datetime.now(UTC) + timedelta(minutes=1)
    assert read_audit(warehouse_client, AuditQuery(since=future)) == []
    assert len(read_audit(warehouse_client, AuditQuery(until=future, limit=2))) == 2


def test_sign_in_and_failed_sign_in(warehouse_client):
    writer = AuditWriter(warehouse_client, Actor.system("dashboards"))
    record_sign_in(writer, "carol", ok=True, role="operator", source="192.0.2.1")
    record_sign_in(writer, "mallory", ok=False, source="198.51.100.9")
    rows = {r.target: r for r in read_audit(warehouse_client, AuditQuery(action=Action.SIGN_IN))}
    assert (rows["carol"].result, rows["carol"].role, rows["carol"].source) == (SUCCESS, "operator", "192.0.2.1")
    assert (rows["mallory"].result, rows["mallory"].role) == (FAILURE, "anonymous")


def test_secrets_are_redacted_at_any_depth():
    assert redact({"password": "p", "nested": {"api_key": "ep_x"}, "key_id": "abc"}) == {
        "password": "<redacted>",
        "nested": {"api_key": "<redacted>"},
        "key_id": "abc",
    }


def test_migrations_are_recorded_once_each(warehouse, warehouse_client):
    from eventpulse.warehouse import migrator
    from eventpulse.warehouse.schema import migrate

    rows = read_audit(warehouse_client, AuditQuery(action=Action.MIGRATION_APPLY, limit=1000))
    assert sorted(r.target for r in rows) == [f"{m.version:04d}_{m.name}" for m in migrator.load_migrations()]
    assert {(r.result, r.role, r.actor) for r in rows} == {(SUCCESS, "system", "migrator")}
    assert migrate(warehouse) == []  # nothing applied: nothing recorded
    assert len(read_audit(warehouse_client, AuditQuery(action=Action.MIGRATION_APPLY, limit=1000))) == len(rows)
