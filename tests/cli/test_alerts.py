"""`eventpulse alerts` against the real warehouse: list, ack, silence, unsilence, notifications, rules."""

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from cli.alerts import parse_duration
from cli.main import cli
from eventpulse.alert_rules import EXAMPLE_RULES, RULES_FILE_NAME
from eventpulse.alert_state import FIRING, Episode, acks, read_silences, write_episodes


def _episode(episode_id: str, rule: str = "error_rate_spike") -> Episode:
    now = datetime.now(UTC)
    return Episode(episode_id, rule, rule, "*", "critical", FIRING, now, now, None, ["acme"], ["acme"], 0.4, 0.15, "m")


@pytest.fixture
def runner(warehouse, monkeypatch, tmp_path) -> CliRunner:
    monkeypatch.setenv("EVENTPULSE_WAREHOUSE_URL", warehouse.url)
    monkeypatch.setenv("EVENTPULSE_WAREHOUSE_DATABASE", warehouse.database)
    monkeypatch.setenv("EVENTPULSE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("EVENTPULSE_ORCHESTRATION_ALERT_RULES_PATH", raising=False)
    return CliRunner()


def test_list_ack_and_silences(runner, warehouse_client):
    write_episodes(warehouse_client, [_episode("abc123def4560000"), _episode("abd0000000000000", rule="volume_drop")])
    listed = runner.invoke(cli, ["alerts", "list", "--status", "firing"])
    assert listed.exit_code == 0, listed.output
    assert "abc123def4560000" in listed.output and "volume_drop" in listed.output

    ambiguous = runner.invoke(cli, ["alerts", "ack", "ab"])
    assert ambiguous.exit_code != 0 and "ambiguous" in ambiguous.output
    done = runner.invoke(cli, ["alerts", "ack", "abc1", "--note", "on it"])
    assert done.exit_code == 0, done.output
    (ack,) = acks(warehouse_client, ["abc123def4560000", "abd0000000000000"]).values()
    assert (ack.episode_id, ack.note) == ("abc123def4560000", "on it")

    made = runner.invoke(cli, ["alerts", "silence", "--rule", "volume_drop", "--for", "2h", "--reason", "deploy"])
    assert made.exit_code == 0, made.output
    (silence,) = read_silences(warehouse_client)
    assert silence.rule == "volume_drop" and timedelta(minutes=119) < silence.ends_at - silence.starts_at <= timedelta(
        hours=2
    )
    assert silence.silence_id in runner.invoke(cli, ["alerts", "silences"]).output
    assert runner.invoke(cli, ["alerts", "unsilence", silence.silence_id[:5]]).exit_code == 0
    assert read_silences(warehouse_client) == []
    assert silence.silence_id in runner.invoke(cli, ["alerts", "silences", "--all"]).output
    assert runner.invoke(cli, ["alerts", "silence", "--for", "soon"]).exit_code != 0
    assert runner.invoke(cli, ["alerts", "notifications"]).exit_code == 0


def test_rules_show_check_set(runner, tmp_path):
    shown = runner.invoke(cli, ["alerts", "rules", "show"])
    assert shown.exit_code == 0 and shown.stdout == EXAMPLE_RULES.read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: x\n    metric: nope\n    threshold: 1\n")
    refused = runner.invoke(cli, ["alerts", "rules", "set", str(bad)])
    assert refused.exit_code != 0 and "nope" in refused.output and not (tmp_path / RULES_FILE_NAME).exists()
    good = tmp_path / "good.yaml"
    good.write_text("rules:\n  - name: busy\n    metric: event_count\n    threshold: 10\n")
    assert "busy: event_count > 10" in runner.invoke(cli, ["alerts", "rules", "check", str(good)]).output
    assert runner.invoke(cli, ["alerts", "rules", "set", str(good)]).exit_code == 0
    assert (tmp_path / RULES_FILE_NAME).read_text() == good.read_text()  # in the data directory


def test_parse_duration():
    assert parse_duration("1h30m") == timedelta(minutes=90) and parse_duration("2d") == timedelta(days=2)
