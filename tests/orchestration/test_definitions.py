"""The code location loads, the workspace validates, and everything in it says what it does."""

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest

from orchestration.definitions import defs

REPO = Path(__file__).resolve().parents[2]


def test_definitions_load_and_everything_has_a_description():
    definitions = defs()
    repo = definitions.get_repository_def()
    graph = repo.asset_graph
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} >= {
        "events",
        "window_aggregates",
        "window_aggregates_batch",
        "rollup_hourly",
        "rollup_daily",
        "events_archive",
        "raw_events_retention",
        "events_replay",
        "imported_file",
    }
    for key in graph.get_all_asset_keys():
        assert graph.get(key).description, f"asset {key} has no description"
    check_keys = graph.asset_check_keys
    assert {k.name for k in check_keys} >= {
        "stream_matches_batch",
        "replay_matches_published",
        "aggregates_are_fresh",
        "dead_letter_rate_is_low",
        "late_event_rate_is_low",
        "no_gaps_in_traffic_windows",
    }
    for key in check_keys:
        assert graph.get_check_spec(key).description, f"check {key} has no description"
    assert {s.name for s in repo.schedule_defs} == {
        "daily_batch_schedule",
        "retention_schedule",
        "stream_health_schedule",
    }
    assert {s.name for s in repo.sensor_defs} == {
        "late_events_sensor",
        "consumer_lag_sensor",
        "alert_rules_sensor",
        "import_files_sensor",
        "audit_run_started",
        "audit_run_succeeded",
        "audit_run_failed",
    }
    for item in [*repo.schedule_defs, *repo.sensor_defs, *repo.get_all_jobs()]:
        if not item.name.startswith("__"):
            assert item.description, f"{item.name} has no description"


def test_daily_schedule_targets_yesterday():
    definitions = defs()
    schedule = definitions.resolve_schedule_def("daily_batch_schedule")
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 3, 0, 30))
    (request,) = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2026-11-02"


@pytest.mark.integration  # runs `dagster definitions validate` in a subprocess
def test_workspace_validates():
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr
