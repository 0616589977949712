"""Timestamps as people send them, through the HTTP API: ISO 8601 normalised, other units refused with a hint,
a missing one taken as the receive time only where the setting allows it."""

from datetime import UTC, datetime, timedelta, timezone

from eventpulse.config.events import EventLimits
from eventpulse.config.gateway import GatewaySettings
from eventpulse.config.redis import RedisSettings
from eventpulse.settings import Settings
from tests.gateway.conftest import event, now_ms, read_topic, serve, wait_for_key
from tests.support.services import free_port

IST = timezone(timedelta(hours=5, minutes=30))


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_iso_timestamps_reach_the_topic_as_epoch_milliseconds(gateway, make_key):
    key = make_key("acme")
    wait_for_key(gateway, key)
    sent = now_ms() - 60_000
    batch = [
        event("iso-z", timestamp=_iso(sent)),
        event("iso-offset", timestamp=datetime.fromtimestamp(sent / 1000, IST).isoformat()),  # +05:30, microseconds
        event("ms", timestamp=sent),
    ]
    with gateway.client(key) as http:
        response = http.post("/api/events/batch", json=batch)
    assert response.status_code == 202, response.text
    messages = read_topic(gateway.settings.broker.bootstrap, gateway.settings.broker.events_topic, expect=3)
    got = {value["id"]: value["timestamp"] for _, value in messages}
    assert got == {"iso-z": sent, "iso-offset": sent, "ms": sent}
    assert all(isinstance(ts, int) for ts in got.values())


def test_a_timestamp_in_another_unit_is_refused_with_a_hint(gateway, make_key):
    key = make_key("acme")
    wait_for_key(gateway, key)
    now = now_ms()
    cases = {"s": now // 1000, "us": now * 1000, "ns": now * 1_000_000}
    with gateway.client(key) as http:
        answers = {unit: http.post("/api/events", json=event(f"u-{unit}", timestamp=ts)) for unit, ts in cases.items()}
        batch = http.post("/api/events/batch", json=[event("ok"), event("secs", timestamp=now / 1000)])
    for unit, name in (("s", "seconds"), ("us", "microseconds"), ("ns", "nanoseconds")):
        assert answers[unit].status_code == 422, answers[unit].text
        [error] = answers[unit].json()["errors"]
        assert error["field"] == "timestamp"
        assert f"looks like epoch {name}: send epoch milliseconds" in error["detail"]
    assert answers["s"].json()["errors"][0]["reason"] == "timestamp_too_old"
    assert answers["ns"].json()["errors"][0]["reason"] == "timestamp_in_future"
    assert batch.status_code == 207
    [error] = batch.json()["errors"]
    assert error["index"] == 1 and "looks like epoch seconds" in error["detail"]


def test_a_missing_timestamp_is_refused_by_default(gateway, make_key):
    key = make_key("acme")
    wait_for_key(gateway, key)
    body = {k: v for k, v in event("no-ts").items() if k != "timestamp"}
    with gateway.client(key) as http:
        response = http.post("/api/events", json=body)
    assert response.status_code == 422
    assert [(e["reason"], e["field"]) for e in response.json()["errors"]] == [("missing_field", "timestamp")]


def test_a_missing_timestamp_is_the_receive_time_when_the_setting_allows(broker_settings, warehouse, make_key):
    settings = Settings(
        broker=broker_settings,
        warehouse=warehouse,
        redis=RedisSettings(url=""),
        gateway=GatewaySettings(port=free_port()),
        events=EventLimits(missing_timestamp_is_receive_time=True),
    )
    body = {k: v for k, v in event("no-ts").items() if k != "timestamp"}
    with serve(settings) as gw:
        key = make_key("acme")
        wait_for_key(gw, key)
        before = now_ms()
        with gw.client(key) as http:
            response = http.post("/api/events", json=body)
            schema = http.get("/openapi.json").json()
        after = now_ms()
    assert response.status_code == 202, response.text
    [(_, value)] = read_topic(broker_settings.bootstrap, broker_settings.events_topic, expect=1)
    assert value["timestamp"] == value["received_at"] and before <= value["timestamp"] <= after
    assert "timestamp" not in schema["components"]["schemas"]["Event"]["required"]
