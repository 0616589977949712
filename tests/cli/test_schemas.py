"""`eventpulse schemas register|list|show|check|set-mode` against the real warehouse, audited."""

import json

from click.testing import CliRunner

from cli.main import cli
from eventpulse.warehouse.client import create_client

V1 = {"type": "object", "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}}, "required": ["sku"]}


def test_register_evolve_refuse_and_audit(warehouse, monkeypatch, tmp_path):
    monkeypatch.setenv("EVENTPULSE_WAREHOUSE_URL", warehouse.url)
    monkeypatch.setenv("EVENTPULSE_WAREHOUSE_DATABASE", warehouse.database)
    monkeypatch.setenv("EVENTPULSE_DATA_DIR", str(tmp_path))
    files = {}
    widened = {**V1, "properties": {**V1["properties"], "qty": {"type": "number"}}}
    narrowed = {**V1, "properties": {**V1["properties"], "qty": {"type": "string"}}}
    for name, schema in {"v1": V1, "v2": widened, "bad": narrowed}.items():
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps(schema))
    (tmp_path / "v1.yaml").write_text(
        "type: object\nproperties: {sku: {type: string}, qty: {type: integer}}\nrequired: [sku]\n"
    )
    runner = CliRunner()

    def run(*args):
        return runner.invoke(cli, ["schemas", *args])

    first = run("register", "acme", "purchase", str(files["v1"]))
    assert first.exit_code == 0 and "version 1 (registered)" in first.output, first.output
    again = run("register", "acme", "purchase", str(tmp_path / "v1.yaml"))  # the same schema, in YAML
    assert again.exit_code == 0 and "version 1 (unchanged" in again.output, again.output
    assert run("check", "acme", "purchase", str(files["bad"])).exit_code == 1
    refused = run("register", "acme", "purchase", str(files["bad"]))
    assert refused.exit_code == 1 and "/properties/qty/type" in refused.output, refused.output
    assert run("check", "acme", "purchase", str(files["v2"])).output.strip() == "compatible (backward)"
    assert "version 2 (registered)" in run("register", "acme", "purchase", str(files["v2"])).output
    assert run("set-mode", "acme", "purchase", "none").exit_code == 0
    assert "version 3 (registered)" in run("register", "acme", "purchase", str(files["bad"])).output  # none: any
    listed = run("list", "acme").output
    assert "purchase" in listed and "      3 none" in listed, listed
    shown = run("show", "acme", "purchase", "--version", "2").output
    assert json.loads(shown.split("\n", 1)[1])["properties"]["qty"] == {"type": "number"}
    assert run("show", "acme", "nothing").exit_code != 0
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({"type": "object", "properties": {"a": {"type": "strnig"}}}))
    bad_schema = run("register", "acme", "other", str(invalid))
    assert bad_schema.exit_code != 0 and "not a valid JSON Schema" in bad_schema.output

    client = create_client(warehouse, role="admin")
    actions = client.query(
        "SELECT action, target, result FROM audit_log WHERE action LIKE 'schema.%' ORDER BY time"
    ).result_rows
    client.close()
    assert [a for a, _, _ in actions] == ["schema.register"] * 4 + [
        "schema.mode_change",
        "schema.register",
        "schema.register",
    ]
    assert [r for _, _, r in actions].count("failure") == 2  # the refused and the invalid registration
