"""The events dataflow's logic, end to end in Bytewax, without a broker or a warehouse.

`flows.dataflow.get_flow` is built with a ``TestingSource`` of generated messages in the events
topic's form (what the gateway produces: keyed ``tenant:user``, the wire document with ``tenant``,
``received_at`` and ``schema_version``) spread over two partitions, and ``TestingSink``s in place of
the warehouse tables and the dead-letter topic. Every expected value is computed here from the
generated messages, not by the flow's code: raw rows, dead letters and their reasons, each window's
event count, error count and rate and distinct users, one duplicate id counted once, one event past
its window's allowed lateness set aside in ``late_events``. The results must not depend on the
number of workers (the window state is spread over them by tenant bucket).
"""

import time
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass

import orjson
import pyarrow as pa
import pytest
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main

from devstack.traffic.generator import EventFactory, GeneratedMessage, TrafficProfile
from eventpulse.aggregation.spec import ALL
from eventpulse.config.stream import StreamSettings
from eventpulse.settings import Settings
from flows.dataflow import FlowSinks, get_flow
from flows.metrics import PipelineMetrics
from flows.source import SourceBatch

TOPIC = "events"
PARTITIONS = (0, 1)
WINDOW_MS = 10_000
LATENESS_S = 5.0
T0 = (time.time_ns() // 1_000_000 - 3_600_000) // WINDOW_MS * WINDOW_MS  # an hour ago, on a window edge
BATCH = 40


@dataclass
class Outputs:
    raw: pa.Table
    dead: pa.Table
    dead_messages: list[tuple[bytes | None, bytes]]
    windows: list[dict]
    late: list[dict]


@dataclass
class Scenario:
    batches: list[SourceBatch]
    valid: list[GeneratedMessage]  # every valid message delivered (the duplicate and the late one too)
    invalid: list[tuple[GeneratedMessage, str]]  # with its dead-letter id topic:partition:offset
    duplicate_id: str
    late_id: str


def _partition(message: GeneratedMessage) -> int:
    return zlib.crc32(message.key) % len(PARTITIONS)


def _scenario() -> Scenario:
    """600 events over 30 s (3 tenants, 10 % errors, 5 % invalid), then a duplicate and a late event."""
    profile = TrafficProfile(tenants=3, users_per_tenant=25, error_share=0.1, invalid_share=0.05)
    messages = list(EventFactory(profile, seed=13).messages(600, T0, rate_per_s=20.0))
    original = next(m for m in messages[100:] if m.valid)
    duplicate_id = original.event["id"]
    # The duplicate comes back a little later (a producer's retry): same key, same document.
    messages.insert(messages.index(original) + 30, original)
    # The late event: for the first window, sent once every partition is 29 s further on. The first
    # window ends at T0 + 10 s; with 1 s of disorder bound and 5 s of lateness it is long closed.
    first = next(m for m in messages if m.valid).event
    late_doc = {**first, "id": "late-event-1", "timestamp": T0 + 1_000, "received_at": T0 + 30_000}
    late_key = f"{late_doc['tenant']}:{late_doc['data']['user_id']}".encode()
    late = GeneratedMessage(late_key, orjson.dumps(late_doc), True, late_doc["tenant"], late_doc, None)
    messages.append(late)

    per_partition: dict[int, list[GeneratedMessage]] = defaultdict(list)
    placed: list[tuple[GeneratedMessage, int, int]] = []
    for m in messages:
        p = _partition(m)
        placed.append((m, p, len(per_partition[p])))
        per_partition[p].append(m)
    # Batches of each partition in offset order, the two partitions interleaved in send order.
    batches: list[SourceBatch] = []
    pending: dict[int, list[tuple[GeneratedMessage, int]]] = defaultdict(list)

    def flush(p: int) -> None:
        chunk = pending.pop(p, [])
        if chunk:
            batches.append(
                SourceBatch(
                    TOPIC,
                    p,
                    [o for _, o in chunk],
                    [m.key for m, _ in chunk],
                    [m.value for m, _ in chunk],
                    [T0 + o for _, o in chunk],
                )
            )

    for m, p, offset in placed:
        if m is late:
            flush(0), flush(1)
        pending[p].append((m, offset))
        if len(pending[p]) == BATCH:
            flush(p)
    flush(0), flush(1)
    invalid = [(m, f"{TOPIC}:{p}:{o}") for m, p, o in placed if not m.valid]
    return Scenario(batches, [m for m in messages if m.valid], invalid, duplicate_id, "late-event-1")


def _settings() -> Settings:
    stream = StreamSettings(
        window_seconds=(10,),
        sliding_windows=(),
        max_out_of_order_s=1.0,
        allowed_lateness_s=LATENESS_S,
        idle_partition_timeout_s=600.0,
        provisional_interval_s=3600.0,  # no provisional rows: the end of input closes every window
        key_buckets=4,
        seed_from_warehouse=False,
        dead_letters_to_topic=True,
        dedup=True,
    )
    return Settings(stream=stream)


def _run(scenario: Scenario, workers: int) -> Outputs:
    raw, dead, dead_messages, windows, late = [], [], [], [], []
    sinks = FlowSinks(
        raw_events=TestingSink(raw),
        dead_letters=TestingSink(dead),
        window_aggregates=TestingSink(windows),
        late_events=TestingSink(late),
        dead_letter_topic=TestingSink(dead_messages),
    )
    flow = get_flow(
        _settings(),
        source=TestingSource(scenario.batches),
        sinks=sinks,
        partitions=PARTITIONS,
        metrics=PipelineMetrics(None, 3600.0),
    )
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return Outputs(
        raw=pa.concat_tables([d.raw_events for _, d in raw]),
        dead=pa.concat_tables([d.dead_letters for _, d in dead if not isinstance(d.dead_letters, list)]),
        dead_messages=dead_messages,
        windows=[r for _, e in windows if not isinstance(e.rows, list) for r in e.rows.to_pylist()],
        late=[r for _, e in late if not isinstance(e.late_rows, list) for r in e.late_rows.to_pylist()],
    )


def _is_error(event: dict) -> bool:
    data = event["data"]
    status = data.get("status_code")
    return event["type"] == "error" or data.get("error") is True or (status is not None and status >= 500)


def _expected_windows(scenario: Scenario) -> dict[tuple, dict]:
    """(tenant, window start, type, source) -> event count, errors, error rate, distinct users, for every
    grouping set (a dimension it does not group by is ALL)."""
    unique = {m.event["id"]: m.event for m in scenario.valid if m.event["id"] != scenario.late_id}
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for e in unique.values():
        start = e["timestamp"] // WINDOW_MS * WINDOW_MS
        groups[(e["tenant"], start, ALL, ALL)].append(e)
        groups[(e["tenant"], start, e["type"], ALL)].append(e)
        groups[(e["tenant"], start, ALL, e["source"])].append(e)
        groups[(e["tenant"], start, e["type"], e["source"])].append(e)
    out = {}
    for key, events in groups.items():
        errors = sum(_is_error(e) for e in events)
        out[key] = {
            "event_count": len(events),
            "error_count": errors,
            "error_rate": errors / len(events),
            "distinct_users": len({e["data"]["user_id"] for e in events}),
        }
    return out


def _final_rows(outputs: Outputs) -> dict[tuple, dict]:
    """The last final version of every window row emitted."""
    latest: dict[tuple, dict] = {}
    for row in outputs.windows:
        assert row["is_final"] == 1  # no provisional interval passes in these runs
        key = (row["tenant"], _ms(row["window_start"]), row["type"], row["source"])
        if key not in latest or row["version"] > latest[key]["version"]:
            latest[key] = row
    return latest


def _ms(value) -> int:
    return int(value.timestamp() * 1000) if hasattr(value, "timestamp") else int(value)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return _scenario()


@pytest.fixture(scope="module", params=[1, 2, 3], ids=lambda n: f"{n}-workers")
def outputs(request, scenario: Scenario) -> Outputs:
    return _run(scenario, request.param)


def test_the_scenario_has_what_the_assertions_need(scenario: Scenario) -> None:
    ids = Counter(m.event["id"] for m in scenario.valid)
    assert ids[scenario.duplicate_id] == 2 and max(ids.values()) == 2
    assert len(scenario.invalid) >= 10 and len({r for m, _ in scenario.invalid for r in [m.reason]}) >= 3
    assert {p for b in scenario.batches for p in [b.partition]} == set(PARTITIONS)
    assert any(_is_error(m.event) for m in scenario.valid)


def test_every_valid_message_is_a_raw_row_once(outputs: Outputs, scenario: Scenario) -> None:
    assert Counter(outputs.raw.column("id").to_pylist()) == Counter(m.event["id"] for m in scenario.valid)
    by_id = {m.event["id"]: m.event for m in scenario.valid}
    for row in outputs.raw.select(["id", "tenant", "type", "is_error"]).to_pylist():
        event = by_id[row["id"]]
        assert (row["tenant"], row["type"], bool(row["is_error"])) == (event["tenant"], event["type"], _is_error(event))


def test_every_invalid_message_is_a_dead_letter_with_its_reason(outputs: Outputs, scenario: Scenario) -> None:
    got = {r["id"]: r for r in outputs.dead.to_pylist()}
    assert len(outputs.dead) == len(got) == len(scenario.invalid)
    for message, ident in scenario.invalid:
        row = got[ident]
        assert (row["reason"], row["tenant"], row["stage"]) == (message.reason.value, message.tenant, "flow")
    on_topic = [orjson.loads(value) for _, value in outputs.dead_messages]
    assert sorted(d["id"] for d in on_topic) == sorted(got)
    assert Counter(d["reason"] for d in on_topic) == Counter(m.reason.value for m, _ in scenario.invalid)


def test_window_counts_error_rates_and_distinct_users_are_exact(outputs: Outputs, scenario: Scenario) -> None:
    expected = _expected_windows(scenario)
    final = _final_rows(outputs)
    assert set(final) == set(expected)
    for key, want in expected.items():
        row = final[key]
        got = {name: row[name] for name in want}
        assert got == pytest.approx(want, rel=1e-12), key


def test_the_duplicate_id_counts_once(outputs: Outputs, scenario: Scenario) -> None:
    original = next(m.event for m in scenario.valid if m.event["id"] == scenario.duplicate_id)
    key = (original["tenant"], original["timestamp"] // WINDOW_MS * WINDOW_MS, ALL, ALL)
    in_window = {
        m.event["id"]
        for m in scenario.valid
        if (m.event["tenant"], m.event["timestamp"] // WINDOW_MS * WINDOW_MS) == key[:2]
        and m.event["id"] != scenario.late_id
    }
    assert _final_rows(outputs)[key]["event_count"] == len(in_window)  # a set: the duplicate once


def test_the_event_past_its_lateness_goes_to_late_events_only(outputs: Outputs, scenario: Scenario) -> None:
    assert [r["id"] for r in outputs.late] == [scenario.late_id]
    (row,) = outputs.late
    assert (_ms(row["window_start"]), _ms(row["window_end"]), row["window_seconds"]) == (T0, T0 + WINDOW_MS, 10)
    assert _ms(row["watermark"]) - (T0 + WINDOW_MS) == row["lateness_ms"] > LATENESS_S * 1000
    first_window = _final_rows(outputs)[(row["tenant"], T0, ALL, ALL)]
    assert first_window["event_count"] == _expected_windows(scenario)[(row["tenant"], T0, ALL, ALL)]["event_count"]


def test_results_do_not_depend_on_the_number_of_workers(scenario: Scenario) -> None:
    one, two = _run(scenario, 1), _run(scenario, 2)

    def ids(o: Outputs) -> tuple:
        return (
            sorted(o.raw.column("id").to_pylist()),
            sorted(o.dead.column("id").to_pylist()),
            sorted(r["id"] for r in o.late),
        )

    def windows(o: Outputs) -> dict[tuple, dict]:
        return {
            k: {n: v for n, v in r.items() if n not in ("version", "emitted_at")} for k, r in _final_rows(o).items()
        }

    assert ids(one) == ids(two)
    first, second = windows(one), windows(two)
    assert set(first) == set(second)
    for key, row in first.items():
        # Micro-batch boundaries follow the scheduler, so a float sum may add in another order
        # (4633.299999999998 vs 4633.2999999999965): floats agree to 1e-12, everything else exactly.
        exact = {n: v for n, v in row.items() if not isinstance(v, float)}
        assert exact == {n: second[key][n] for n in exact}, key
        floats = {n: v for n, v in row.items() if isinstance(v, float)}
        assert floats == pytest.approx({n: second[key][n] for n in floats}, rel=1e-12, nan_ok=True), key
