"""`eventpulse webhooks create|list|update|revoke` against the real warehouse; secrets only encrypted."""

import json

from click.testing import CliRunner

from cli.main import cli
from eventpulse.settings import Settings
from eventpulse.warehouse.client import create_client
from eventpulse.webhooks.secrets import secret_box


def test_create_list_update_revoke(warehouse, monkeypatch, tmp_path):
    monkeypatch.setenv("EVENTPULSE_WAREHOUSE_URL", warehouse.url)
    monkeypatch.setenv("EVENTPULSE_WAREHOUSE_DATABASE", warehouse.database)
    monkeypatch.setenv("EVENTPULSE_DATA_DIR", str(tmp_path))
    mapping = tmp_path / "stripe.yaml"
    mapping.write_text("type: $.type\ntimestamp: $.created\nid: $.id\n")
    runner = CliRunner()
    created = runner.invoke(cli, ["webhooks", "create", "acme", "acme-stripe", "--mapping", str(mapping)])
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert (tmp_path / "webhook.key").exists()  # the local stack's key, made on first use
    client = create_client(warehouse, role="admin")
    (stored,) = client.query("SELECT tenant, secret_encrypted, mapping FROM webhook_sources FINAL").result_rows
    assert stored[0] == "acme" and secret not in stored[1] and json.loads(stored[2])["id"] == "$.id"
    assert secret_box(Settings()).decrypt(stored[1]) == secret  # readable with the key only
    # Their own secret, from stdin; a name another tenant holds; an invalid mapping.
    own = runner.invoke(
        cli, ["webhooks", "create", "acme", "acme-crm", "--mapping", str(mapping), "--secret-stdin"], input="s" * 24
    )
    assert own.exit_code == 0 and "s" * 24 not in own.output
    taken = runner.invoke(cli, ["webhooks", "create", "globex", "acme-stripe", "--mapping", str(mapping)])
    assert taken.exit_code != 0 and "taken" in taken.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("type: $.a[*]\n")
    refused = runner.invoke(cli, ["webhooks", "create", "acme", "acme-bad", "--mapping", str(bad)])
    assert refused.exit_code != 0 and "only .name" in refused.output
    listed = runner.invoke(cli, ["webhooks", "list", "acme"])
    assert "acme-stripe" in listed.output and "acme-crm" in listed.output and secret not in listed.output
    rotated = runner.invoke(cli, ["webhooks", "update", "acme", "acme-stripe", "--rotate-secret"])
    assert rotated.exit_code == 0, rotated.output
    new_secret = rotated.stdout.strip().splitlines()[-1]
    assert new_secret != secret and new_secret.startswith("whsec_")
    assert runner.invoke(cli, ["webhooks", "revoke", "globex", "acme-stripe"]).exit_code != 0  # not globex's
    assert runner.invoke(cli, ["webhooks", "revoke", "acme", "acme-stripe"]).exit_code == 0
    assert "acme-stripe" not in runner.invoke(cli, ["webhooks", "list"]).output
    assert "revoked" in runner.invoke(cli, ["webhooks", "list", "--all"]).output
    actions = client.query(
        "SELECT action, target, result FROM audit_log WHERE action LIKE 'webhook_source.%' ORDER BY time"
    ).result_rows
    client.close()
    assert [(a, t) for a, t, r in actions if r == "success"] == [
        ("webhook_source.create", "acme-stripe"),
        ("webhook_source.create", "acme-crm"),
        ("webhook_source.update", "acme-stripe"),
        ("webhook_source.revoke", "acme-stripe"),
    ]
    assert {(a, t) for a, t, r in actions if r == "failure"} == {
        ("webhook_source.create", "acme-stripe"),
        ("webhook_source.create", "acme-bad"),
        ("webhook_source.revoke", "acme-stripe"),
    }
