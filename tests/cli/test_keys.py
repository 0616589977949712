"""`eventpulse keys create|list|revoke` against the real warehouse; only hashes are stored."""

from click.testing import CliRunner

from cli.main import cli
from eventpulse.api_keys import hash_key, key_id_of
from eventpulse.warehouse.client import create_client


def test_create_list_revoke(warehouse, monkeypatch):
    monkeypatch.setenv("EVENTPULSE_WAREHOUSE_URL", warehouse.url)
    monkeypatch.setenv("EVENTPULSE_WAREHOUSE_DATABASE", warehouse.database)
    runner = CliRunner()
    created = runner.invoke(cli, ["keys", "create", "acme", "--scope", "ingest", "--rate", "500"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    key_id = key_id_of(key)
    assert key_id and len(key) > 50
    client = create_client(warehouse, role="admin")
    stored = client.query("SELECT key_hash, scopes, rate_per_s FROM api_keys FINAL").result_rows
    assert stored == [(hash_key(key), ["ingest"], 500.0)]  # the key itself is nowhere
    listed = runner.invoke(cli, ["keys", "list", "acme"])
    assert key_id in listed.output and "active" in listed.output and key not in listed.output
    wrong_tenant = runner.invoke(cli, ["keys", "revoke", "other", key_id])
    assert wrong_tenant.exit_code != 0
    revoked = runner.invoke(cli, ["keys", "revoke", "acme", key_id])
    assert revoked.exit_code == 0 and f"revoked {key_id}" in revoked.output
    assert key_id not in runner.invoke(cli, ["keys", "list"]).output
    assert "revoked" in runner.invoke(cli, ["keys", "list", "--all"]).output
    assert runner.invoke(cli, ["keys", "create", "acme", "--scope", "admin"]).exit_code != 0
    client.close()
