"""Every notebook runs top to bottom against the database the pipeline filled, and computes the right numbers.

The database is filled by the real dataflow from seeded generated traffic (`tests.dashboards.conftest`);
the expected results are computed here, in plain Python, from the very messages that were produced: the
span, the funnel and the retention cohorts of ``funnel_and_retention``; the windows, the anomalies and
the worst window's breakdown of ``latency_error_anomalies``. A cell appended to each notebook saves its
result frames (parquet) so the test can read them back from the kernel.
"""

import random
import time
import uuid
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import nbformat
import orjson
import polars as pl
import pytest
from nbclient import NotebookClient

from devstack.traffic.generator import EventFactory, TrafficProfile
from eventpulse.analysis.anomalies import AnomalyRules, find_anomalies
from eventpulse.config.broker import BrokerSettings
from tests.dashboards.conftest import Filled, create_topics, fresh_database
from tests.support.pipeline import produce, run_flow_until_drained

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
RESULTS = {
    "funnel_and_retention": ("span", "reached", "overall", "retention"),
    "latency_error_anomalies": ("windows", "scored", "anomalies", "inside", "worst"),
}
ROLLING, WINDOW_MS = 5, 60_000
FUNNEL = ("page_view", "add_to_cart", "purchase")


def test_there_are_notebooks():
    assert [p.stem for p in NOTEBOOKS] == sorted(RESULTS)


def _run(path: Path, out: Path, monkeypatch, filled, rolling: int = ROLLING) -> dict[str, pl.DataFrame]:
    monkeypatch.setenv("EVENTPULSE_WAREHOUSE_URL", filled.warehouse.url)
    monkeypatch.setenv("EVENTPULSE_WAREHOUSE_DATABASE", filled.warehouse.database)
    monkeypatch.setenv("NOTEBOOK_LOOKBACK_HOURS", "24")  # the whole filled span, however long the session ran
    monkeypatch.setenv("NOTEBOOK_COHORT_PERIOD", "minute")  # a few minutes of data: minute cohorts
    monkeypatch.setenv("NOTEBOOK_ROLLING_WINDOWS", str(rolling))
    book = nbformat.read(path, as_version=4)
    names = RESULTS[path.stem]
    save = "\n".join(
        f"(_f if isinstance(_f := {n}, pl.DataFrame) else pl.DataFrame([_f])).write_parquet({str(out / n)!r})"
        for n in names
    )
    book.cells.append(nbformat.v4.new_code_cell(save))
    NotebookClient(
        book, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    outputs = [o for cell in book.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    charts = [o for o in outputs if "vegaEmbed" in o.get("data", {}).get("text/html", "")]
    assert len(charts) >= 2, "each notebook draws its charts"
    return {n: pl.read_parquet(out / n) for n in names}


def _events(filled) -> list[dict]:
    assert filled.messages, "the filled fixture keeps the produced messages"
    return [m.event for m in filled.messages if m.valid]


def _ms(frame: pl.DataFrame, column: str) -> list[int]:
    return frame[column].dt.epoch("ms").to_list()


def _is_error(e: dict) -> bool:
    status = e["data"].get("status_code")
    return e["type"] == "error" or e["data"].get("error") is True or (status is not None and status >= 500)


def _level(steps: list[tuple[int, str]]) -> int:
    """ClickHouse ``windowFunnel`` (whole-second times; the data span is far inside its hour)."""
    views = [t for t, kind in steps if kind == FUNNEL[0]]
    if not views:
        return 0
    carts = [t for t, kind in steps if kind == FUNNEL[1] and t >= min(views)]
    if not carts:
        return 1
    return 3 if any(kind == FUNNEL[2] and t >= min(carts) for t, kind in steps) else 2


def check_funnel_and_retention(got: dict[str, pl.DataFrame], events: list[dict]) -> None:
    span = got["span"].row(0, named=True)
    assert span["events"] == len(events)
    assert span["users"] == len({(e["tenant"], e["data"]["user_id"]) for e in events})

    users: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
    for e in events:
        users[(e["tenant"], e["data"]["user_id"])].append((e["timestamp"] // 1000, e["type"]))
    reached: dict[tuple[str, int], int] = defaultdict(int)
    for (tenant, _), steps in users.items():
        for k in range(1, _level(steps) + 1):
            reached[(tenant, k)] += 1
    rows = got["reached"].to_dicts()
    assert {(r["tenant"], r["level_step"]): r["users"] for r in rows} == reached
    for r in rows:
        assert r["conversion"] == pytest.approx(r["users"] / reached[(r["tenant"], 1)])
    overall = {k: sum(n for (_, level), n in reached.items() if level == k) for k in (1, 2, 3)}
    assert dict(got["overall"].select("level_step", "users").iter_rows()) == {k: n for k, n in overall.items() if n}
    assert overall[3] > 0  # the generated traffic goes through the whole funnel

    activity = {(e["tenant"], e["data"]["user_id"], e["timestamp"] // 60_000 * 60_000) for e in events}
    cohort: dict[tuple[str, str], int] = {}
    for tenant, user, period in activity:
        cohort[(tenant, user)] = min(period, cohort.get((tenant, user), period))
    active: dict[tuple[int, int], int] = defaultdict(int)
    for tenant, user, period in activity:
        first = cohort[(tenant, user)]
        active[(first, (period - first) // 60_000)] += 1
    size: dict[int, int] = defaultdict(int)
    for first in cohort.values():
        size[first] += 1
    retention = got["retention"]
    table = dict(zip(zip(_ms(retention, "cohort"), retention["offset"], strict=True), retention["active"], strict=True))
    assert table == active
    for (first, offset), n, share in zip(table, retention["size"], retention["retention"], strict=True):
        assert (n, share) == (size[first], pytest.approx(active[(first, offset)] / size[first]))
    assert len({first for first, _ in active}) >= 3 and max(offset for _, offset in active) >= 3


def check_latency_error_anomalies(got: dict[str, pl.DataFrame], events: list[dict]) -> None:
    expected: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for e in events:
        counts = expected[(e["tenant"], e["timestamp"] // WINDOW_MS * WINDOW_MS)]
        counts[0] += 1
        counts[1] += _is_error(e)
    windows = got["windows"]
    keys = list(zip(windows["tenant"], _ms(windows, "window_start"), strict=True))
    assert len(keys) == len(set(keys)) and set(keys) == set(expected)
    for key, count, errors, rate in zip(
        keys, windows["event_count"], windows["error_count"], windows["error_rate"], strict=True
    ):
        assert [count, errors] == expected[key] and rate == pytest.approx(errors / count)

    # The verdicts are `eventpulse.analysis.anomalies`' (tested on its own) with the notebook's rules.
    want = find_anomalies(windows, AnomalyRules(rolling=ROLLING, min_history=5))
    anomalies = set(zip(want["tenant"], _ms(want, "window_start"), strict=True))
    found = got["anomalies"]
    assert set(zip(found["tenant"], _ms(found, "window_start"), strict=True)) == anomalies

    worst = got["worst"].row(0, named=True)
    start = got["worst"]["window_start"].dt.epoch("ms")[0]
    inside = [e for e in events if e["tenant"] == worst["tenant"] and start <= e["timestamp"] < start + WINDOW_MS]
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for e in inside:
        groups[(e["type"], e["source"])].append(e)
    rows = {(r["type"], r["source"]): r for r in got["inside"].to_dicts()}
    assert set(rows) == set(groups)
    for key, members in groups.items():
        row = rows[key]
        assert (row["events"], row["errors"]) == (len(members), sum(_is_error(e) for e in members))
        assert row["max_ms"] == pytest.approx(max(e["data"]["latency_ms"] for e in members), abs=0.051)
    assert worst["is_final"] == 1 and sum(len(m) for m in groups.values()) == worst["event_count"]


CHECKS = {"funnel_and_retention": check_funnel_and_retention, "latency_error_anomalies": check_latency_error_anomalies}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_computes_the_results_of_the_seeded_traffic(path: Path, filled, monkeypatch, tmp_path):
    CHECKS[path.stem](_run(path, tmp_path, monkeypatch, filled), _events(filled))


SPIKE_TENANT, SPIKE_WINDOW = "tenant-01", 45  # the injected spike: the 46th minute of tenant-01


def _fill_an_hour(warehouse_url: str, broker_bootstrap: str, log: Path, spike: bool) -> tuple[Filled, int]:
    """An hour of steady traffic (3 tenants, ~160 events per tenant and minute) through the real flow;
    with ``spike``, one minute of one tenant six times slower with 40 % errors. Returns the filled
    database and the spike window's start (ms)."""
    warehouse = fresh_database(warehouse_url)
    topic = f"nb-events-{uuid.uuid4().hex[:8]}"
    broker = BrokerSettings(bootstrap=broker_bootstrap, events_topic=topic, dead_letter_topic=f"dead-{topic}")
    create_topics(broker_bootstrap, topic, broker.dead_letter_topic)
    start_ms = (int(time.time() * 1000) - 62 * WINDOW_MS) // WINDOW_MS * WINDOW_MS
    spike_start = start_ms + SPIKE_WINDOW * WINDOW_MS
    rng = random.Random(3)
    messages = []
    profile = TrafficProfile(tenants=3, invalid_share=0.0)
    for m in EventFactory(profile, seed=21).messages(28_800, start_ms, rate_per_s=8):
        event = m.event
        if spike and m.tenant == SPIKE_TENANT and spike_start <= event["timestamp"] < spike_start + WINDOW_MS:
            event["data"]["latency_ms"] = round(event["data"]["latency_ms"] * 6, 1)
            if rng.random() < 0.4:
                event["data"]["error"] = True
            m = replace(m, value=orjson.dumps(event), event=event)
        messages.append(m)
    produce(broker_bootstrap, topic, messages)
    run_flow_until_drained(broker, warehouse, timeout=240, log=log)
    return Filled(warehouse, broker, None, None, len(messages), 0, tuple(messages)), spike_start  # type: ignore[arg-type]


@pytest.mark.parametrize("spike", [False, True], ids=["steady", "spike"])
def test_the_anomaly_notebook_is_quiet_on_steady_traffic_and_finds_an_injected_spike(
    spike: bool, warehouse_url: str, broker_bootstrap: str, monkeypatch, tmp_path: Path
) -> None:
    path = next(p for p in NOTEBOOKS if p.stem == "latency_error_anomalies")
    filled, spike_start = _fill_an_hour(warehouse_url, broker_bootstrap, tmp_path / "flow.log", spike)
    out = tmp_path / "out"
    out.mkdir()
    got = _run(path, out, monkeypatch, filled, rolling=30)
    assert got["windows"].height >= 3 * 60
    found = set(zip(got["anomalies"]["tenant"], _ms(got["anomalies"], "window_start"), strict=True))
    assert found == ({(SPIKE_TENANT, spike_start)} if spike else set())
