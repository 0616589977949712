"""Audit coverage: every admin action, performed through its real entry point, leaves exactly one
``audit_log`` row with the right fields; a failed action leaves one with ``result = failure``.

Entry points: the ``eventpulse`` CLI (keys, migrate), the SQL console page (Streamlit AppTest), Dagster
runs materialized on a real instance with the run-status sensors evaluated on their events, the
retention asset, and the alert sensor on a rules file that changes. The dashboards have no sign-in yet:
`record_sign_in` is covered in test_writer.py.
"""

import getpass
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner
from dagster._core.events import DagsterEventType

from cli.main import cli
from eventpulse.audit import FAILURE, SUCCESS, Action, AuditEntry, AuditQuery, read_audit
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse import migrator
from eventpulse.warehouse.client import create_client
from orchestration.assets.retention import raw_events_retention
from orchestration.resources import AlertingResource, WarehouseResource
from orchestration.sensors.alerts import alert_rules_sensor
from orchestration.sensors.run_audit import (
    run_failure_audit_sensor,
    run_started_audit_sensor,
    run_success_audit_sensor,
)
from tests.dashboards.apptest import open_page
from tests.dashboards.conftest import use_warehouse
from tests.orchestration.rawdata import day_start_ms, insert_raw, raw_rows

LOGIN = getpass.getuser()


def _env(warehouse: WarehouseSettings) -> dict[str, str]:
    return {"EVENTPULSE_WAREHOUSE_URL": warehouse.url, "EVENTPULSE_WAREHOUSE_DATABASE": warehouse.database}


def _rows(client, action: str) -> list[AuditEntry]:
    return list(reversed(read_audit(client, AuditQuery(action=action, limit=1000))))


def _cli(warehouse: WarehouseSettings, *args: str):
    return CliRunner().invoke(cli, list(args), env=_env(warehouse))


def test_api_key_create_and_revoke_through_the_cli(warehouse, warehouse_client):
    created = _cli(warehouse, "keys", "create", "acme", "--scope", "ingest", "--description", "ci")
    assert created.exit_code == 0, created.output
    key_id = re.search(r"created key (\w+)", created.output).group(1)
    assert "ep_" in created.output
    revoked = _cli(warehouse, "keys", "revoke", "acme", key_id)
    assert revoked.exit_code == 0, revoked.output

    (create,) = _rows(warehouse_client, Action.API_KEY_CREATE)
    assert (create.actor, create.role, create.tenant, create.target, create.result) == (
        LOGIN,
        "platform_admin",
        "acme",
        key_id,
        SUCCESS,
    )
    assert create.parameters["scopes"] == ["ingest"] and create.parameters["description"] == "ci"
    assert create.source.startswith("eventpulse keys@")
    assert "ep_" not in str(create.parameters)  # the key itself is never logged
    (revoke,) = _rows(warehouse_client, Action.API_KEY_REVOKE)
    assert (revoke.tenant, revoke.target, revoke.result, revoke.actor) == ("acme", key_id, SUCCESS, LOGIN)


def test_failed_key_actions_are_recorded_as_failures(warehouse, warehouse_client):
    missing = _cli(warehouse, "keys", "revoke", "acme", "000000000000")
    assert missing.exit_code != 0
    bad = _cli(warehouse, "keys", "create", " ")
    assert bad.exit_code != 0
    (revoke,) = _rows(warehouse_client, Action.API_KEY_REVOKE)
    assert (revoke.result, revoke.target, revoke.tenant) == (FAILURE, "000000000000", "acme")
    assert "no active key" in revoke.error
    (create,) = _rows(warehouse_client, Action.API_KEY_CREATE)
    assert create.result == FAILURE and "tenant must not be empty" in create.error
    assert warehouse_client.query("SELECT count() FROM api_keys").result_rows[0][0] == 0


def test_users_add_and_remove_through_the_cli(warehouse, warehouse_client):
    run = CliRunner().invoke
    added = run(
        cli,
        ["users", "add", "ana", "--role", "tenant_analyst", "--tenant", "acme", "--password-stdin"],
        input="correct horse battery\n",
        env=_env(warehouse),
    )
    assert added.exit_code == 0, added.output
    listed = run(cli, ["users", "list"], env=_env(warehouse))
    assert "ana" in listed.output and "tenant_analyst" in listed.output
    assert run(cli, ["users", "remove", "ana"], env=_env(warehouse)).exit_code == 0
    assert run(cli, ["users", "remove", "ana"], env=_env(warehouse)).exit_code != 0  # gone: a failure row

    (add,) = _rows(warehouse_client, Action.USER_ADD)
    assert (add.actor, add.role, add.tenant, add.target, add.result) == (
        LOGIN,
        "platform_admin",
        "acme",
        "ana",
        SUCCESS,
    )
    assert add.parameters == {"role": "tenant_analyst", "existing": False}
    removed, missing = _rows(warehouse_client, Action.USER_REMOVE)
    assert (removed.target, removed.result, removed.parameters["tenant"]) == ("ana", SUCCESS, "acme")
    assert (missing.target, missing.result) == ("ana", FAILURE) and "no user" in missing.error
    assert "correct horse" not in str([r.parameters for r in _rows(warehouse_client, "user")])


def test_migrations_through_the_cli(warehouse_url):
    settings = WarehouseSettings(url=warehouse_url, database=f"t_{uuid.uuid4().hex[:12]}")
    result = _cli(settings, "migrate")
    assert result.exit_code == 0, result.output
    client = create_client(settings, role="admin")
    rows = _rows(client, Action.MIGRATION_APPLY)
    expected = [f"{m.version:04d}_{m.name}" for m in migrator.load_migrations()]
    assert [r.target for r in rows] == expected  # one row per applied file, in order
    assert {(r.actor, r.role, r.result) for r in rows} == {(LOGIN, "platform_admin", SUCCESS)}
    assert rows[0].parameters["checksum"] == migrator.load_migrations()[0].checksum
    assert _cli(settings, "migrate").exit_code == 0
    assert len(_rows(client, Action.MIGRATION_APPLY)) == len(expected)  # nothing new applied, nothing recorded
    client.close()


def test_a_failing_migration_is_recorded_as_a_failure(warehouse, warehouse_client, tmp_path: Path):
    for m in migrator.load_migrations():
        (tmp_path / f"{m.version:04d}_{m.name}.sql").write_text(m.text)
    (tmp_path / "0999_create_broken.sql").write_text("CREATE TABLE broken (a NoSuchType) ENGINE = Memory;\n")
    from eventpulse.audit import Actor, AuditWriter

    writer = AuditWriter(warehouse_client, Actor("ops", "platform_admin"))
    with pytest.raises(migrator.MigrationError):
        migrator.apply(warehouse_client, migrator.load_migrations(tmp_path), {"raw_ttl_days": 1}, audit=writer)
    failed = [r for r in _rows(warehouse_client, Action.MIGRATION_APPLY) if r.target == "0999_create_broken"]
    assert [(r.result, r.actor) for r in failed] == [(FAILURE, "ops")]
    assert "NoSuchType" in failed[0].error


def _console(at, sql: str):
    at.text_area(key="sql_text").set_value(sql)
    at.button(key="sql_run").click().run()
    assert not at.exception, at.exception
    return at


def test_sql_console_queries_and_refusals(monkeypatch, warehouse, warehouse_client):
    use_warehouse(monkeypatch, warehouse)
    at = _console(open_page("sql_console"), "SELECT count() AS n FROM events")
    assert at.dataframe, "the query did not run"
    _console(at, "DROP TABLE events")
    assert at.error and "Refused" in at.error[0].value
    ran, refused = _rows(warehouse_client, Action.SQL_QUERY)
    assert (ran.target, ran.result, ran.actor, ran.role) == (
        "SELECT count() AS n FROM events",
        SUCCESS,
        "dash-admin",  # the user `open_page` signs in with (tests/dashboards/apptest.py)
        "platform_admin",
    )
    assert ran.parameters["database"] == warehouse.database
    assert (refused.target, refused.result) == ("DROP TABLE events", FAILURE)
    assert "RefusedStatement" in refused.error


@dg.asset(partitions_def=dg.DailyPartitionsDefinition(start_date="2026-01-01"))
def audited_asset() -> None:
    """A partitioned asset standing in for a backfilled day."""


@dg.asset
def failing_asset() -> None:
    raise RuntimeError("boom")


def _evaluate(sensor, run, event, instance, resources) -> None:
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name, dagster_event=event, dagster_instance=instance, dagster_run=run, resources=resources
    )
    sensor(context)


def test_dagster_run_launch_success_and_failure(warehouse, warehouse_client):
    resources = {"warehouse": WarehouseResource(url=warehouse.url, database=warehouse.database)}
    with dg.instance_for_test() as instance:
        tags = {"dagster/schedule_name": "daily_batch_schedule"}
        ok = dg.materialize([audited_asset], partition_key="2026-11-02", instance=instance, tags=tags)
        run = instance.get_run_by_id(ok.run_id)
        (start,) = instance.get_records_for_run(ok.run_id, of_type=DagsterEventType.RUN_START).records
        _evaluate(run_started_audit_sensor, run, start.event_log_entry.dagster_event, instance, resources)
        _evaluate(run_success_audit_sensor, run, ok.get_run_success_event(), instance, resources)

        bad = dg.materialize([failing_asset], instance=instance, raise_on_error=False)
        bad_run = instance.get_run_by_id(bad.run_id)
        _evaluate(run_failure_audit_sensor, bad_run, bad.get_run_failure_event(), instance, resources)

    (started,) = _rows(warehouse_client, Action.RUN_START)
    (succeeded,) = _rows(warehouse_client, Action.RUN_SUCCESS)
    for row in (started, succeeded):
        assert (row.actor, row.role, row.result, row.request_id) == (
            "schedule:daily_batch_schedule",
            "system",
            SUCCESS,
            ok.run_id,
        )
        assert row.parameters["partition"] == "2026-11-02" and row.parameters["assets"] == ["audited_asset"]
    (failed,) = _rows(warehouse_client, Action.RUN_FAILURE)
    assert (failed.actor, failed.role, failed.result, failed.request_id) == ("manual", "operator", FAILURE, bad.run_id)
    assert failed.error


def test_retention_runs_record_what_they_dropped_and_refused(resources, warehouse_client):
    config = {"ops": {"raw_events_retention": {"config": {}}}}
    assert dg.materialize([raw_events_retention], resources=resources, run_config=config).success
    old_day = (datetime.now(UTC) - timedelta(days=400)).date()
    insert_raw(warehouse_client, raw_rows(20, day_start_ms(old_day, 12), seed=3))  # never archived: refused
    refused = dg.materialize([raw_events_retention], resources=resources, run_config=config, raise_on_error=False)
    assert not refused.success
    ok, failed = _rows(warehouse_client, Action.RETENTION_RUN)
    assert (ok.result, ok.target, ok.actor, ok.parameters["dropped"], ok.parameters["refused"]) == (
        SUCCESS,
        "events",
        "manual",
        {},
        {},
    )
    assert (failed.result, failed.request_id != ok.request_id) == (FAILURE, True)
    assert "never archived" in failed.parameters["refused"][old_day.isoformat()]
    assert failed.parameters["run_id"] == refused.run_id


RULES = """
rules:
  - name: high_error_rate
    metric: error_rate
    threshold: 0.1
  - name: slow_p99
    metric: latency_p99
    threshold: 1000
"""


def test_alert_rule_changes(resources, warehouse_client, tmp_path: Path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    resources = {**resources, "alerting": AlertingResource(rules_path=str(path), webhook_urls=[])}

    def tick(cursor):
        context = dg.build_sensor_context(cursor=cursor, resources=resources)
        alert_rules_sensor(context)
        return context.cursor

    cursor = tick(None)
    assert tick(cursor) == cursor  # unchanged file: no new row
    path.write_text(RULES.replace("threshold: 1000", "threshold: 800").replace("high_error_rate", "errors"))
    cursor = tick(cursor)
    path.write_text("rules:\n  - name: bad\n    metric: no_such_metric\n    threshold: 1\n")
    for _ in range(2):  # a broken file fails the sensor every tick but is recorded once
        with pytest.raises(Exception, match="no_such_metric"):
            tick(cursor)

    first, changed, broken = _rows(warehouse_client, Action.ALERT_RULES_CHANGE)
    assert (first.result, first.target, first.parameters["added"]) == (
        SUCCESS,
        str(path),
        ["high_error_rate", "slow_p99"],
    )
    assert (first.actor, first.role) == ("sensor:alert_rules_sensor", "system")
    assert (changed.parameters["added"], changed.parameters["removed"], changed.parameters["changed"]) == (
        ["errors"],
        ["high_error_rate"],
        ["slow_p99"],
    )
    assert broken.result == FAILURE and "no_such_metric" in broken.error
