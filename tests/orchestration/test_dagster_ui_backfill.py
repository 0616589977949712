"""A backfill launched the way the UI launches it: GraphQL against a running `dagster dev`.

One test starts the real webserver + daemon on a free port (it is slow to start), launches a
three-day backfill of window_aggregates_batch, waits for the daemon to run it, and checks that
it ran as ONE run (BackfillPolicy.single_run) and rebuilt the three days in the warehouse.
"""

import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from tests.orchestration.rawdata import day_start_ms, insert_raw, raw_rows
from tests.support.services import free_port

REPO = Path(__file__).resolve().parents[2]
DAYS = [date(2026, 10, 10) + timedelta(days=n) for n in range(3)]

LAUNCH = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on InvalidStepError { invalidStepKey }
    ... on UnauthorizedError { message }
  }
}
"""

STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status runs(limit: 10) { runId status } error { message } }
  }
}
"""


def _graphql(url: str, query: str, variables: dict) -> dict:
    response = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables}, timeout=30)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


@pytest.fixture
def dagster_url(warehouse, broker_bootstrap, tmp_path: Path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "orchestration" / "dagster.yaml").read_text())
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTPULSE_")}
    env.update(
        DAGSTER_HOME=str(home),
        EVENTPULSE_DATA_DIR=str(tmp_path),
        **warehouse.environment(),
        EVENTPULSE_BROKER_BOOTSTRAP=broker_bootstrap,
        PYTHONPATH=str(REPO),
    )
    argv = [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    log = tmp_path / "dagster.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()[-4000:]
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"dagster dev not ready:\n{log.read_text()[-4000:]}"
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_ui_backfill_of_three_days_runs_once_and_rebuilds_them(dagster_url, warehouse_client):
    for n, day in enumerate(DAYS):
        insert_raw(warehouse_client, raw_rows(200, day_start_ms(day, 15), seed=40 + n, offset=n * 1000))
    params = {
        "partitionNames": [d.isoformat() for d in DAYS],
        "assetSelection": [{"path": ["window_aggregates_batch"]}],
        "fromFailure": False,
    }
    deadline = time.monotonic() + 60
    while True:  # the code location may still be loading right after the server answers
        launched = _graphql(dagster_url, LAUNCH, {"params": params})["launchPartitionBackfill"]
        if launched["__typename"] == "LaunchBackfillSuccess" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert launched["__typename"] == "LaunchBackfillSuccess", launched

    # The daemon submits the backfill's run(s) within its 30 s loop; wait for them to finish.
    deadline = time.monotonic() + 150
    while True:
        backfill = _graphql(dagster_url, STATUS, {"id": launched["backfillId"]})["partitionBackfillOrError"]
        statuses = [r["status"] for r in backfill["runs"]]
        if statuses and all(s in ("SUCCESS", "FAILURE", "CANCELED") for s in statuses):
            break
        assert backfill["status"] in ("REQUESTED", "COMPLETED", "COMPLETED_SUCCESS"), backfill
        assert time.monotonic() < deadline, backfill
        time.sleep(1)
    assert statuses == ["SUCCESS"]  # one run for the whole range (BackfillPolicy.single_run)

    rows = warehouse_client.query(
        "SELECT toDate(window_start) AS d, uniqExact(origin), sum(event_count) FROM window_aggregates FINAL "
        "WHERE window_seconds = 60 AND type = '*' AND source = '*' GROUP BY d ORDER BY d"
    ).result_rows
    assert rows == [(day, 1, 200) for day in DAYS]
    assert warehouse_client.command("SELECT uniqExact(origin) = 1 AND any(origin) = 'batch' FROM window_aggregates")
