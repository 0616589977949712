"""The audit page lists audit_log rows, newest first, and its filters narrow them."""

from eventpulse.audit import FAILURE, Action, Actor, AuditWriter
from tests.dashboards.apptest import open_page
from tests.dashboards.conftest import use_warehouse


def test_audit_page_lists_and_filters(monkeypatch, warehouse, warehouse_client):
    use_warehouse(monkeypatch, warehouse)
    writer = AuditWriter(warehouse_client, Actor("alice", "platform_admin"))
    writer.record(Action.API_KEY_CREATE, target="k1", tenant="acme")
    writer.record(Action.API_KEY_REVOKE, target="k2", tenant="acme", result=FAILURE, error="no such key")
    writer.record(Action.SQL_QUERY, actor=Actor("bob", "anonymous"), target="SELECT 1")
    at = open_page("audit")
    shown = at.dataframe[0].value
    shown = shown[~shown["action"].isin(["auth.sign_in", "user.add"])]  # the test's own user and sign-in
    assert list(shown["target"][:3]) == ["SELECT 1", "k2", "k1"]  # newest first (migrations below)
    at.selectbox(key="audit_action").set_value("api_key").run()
    assert not at.exception, at.exception
    assert set(at.dataframe[0].value["action"]) == {"api_key.create", "api_key.revoke"}
    at.selectbox(key="audit_result").set_value("failure").run()
    assert list(at.dataframe[0].value["error"]) == ["no such key"]
    at.selectbox(key="audit_action").set_value("").run()
    at.selectbox(key="audit_result").set_value("").run()
    at.selectbox(key="audit_actor").set_value("bob").run()
    assert list(at.dataframe[0].value["actor"]) == ["bob"]
