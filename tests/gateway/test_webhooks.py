"""Inbound webhooks through a real gateway, broker, dataflow and warehouse (issue 17, item 5).

A signed delivery lands in ``events`` exactly once, also when the sender retries it (signed anew);
a bad or missing signature, a stale timestamp, a replayed signature and an unknown source are refused
and produce nothing; unmappable, malformed and invalid payloads are dead-lettered with their reason.
With two gateways on one Redis a replay to the other replica is refused too; the control (no Redis)
shows each process alone would let it through.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator

import orjson
import pytest

from eventpulse.config.redis import RedisSettings
from eventpulse.settings import Settings
from eventpulse.warehouse.client import create_client
from eventpulse.webhooks.store import revoke_source
from tests.gateway.conftest import (
    RunningGateway,
    gateway_settings,
    post_webhook,
    read_topic,
    register_webhook,
    serve,
    wait_for_source,
    with_webhooks,
)
from tests.gateway.test_edges import dead_letters
from tests.support.pipeline import run_flow_until_drained
from tests.support.services import free_port

pytestmark = pytest.mark.integration

STRIPE_LIKE = {
    "type": "$.type",
    "timestamp": "$.created",
    "user_id": "$.data.object.customer",
    "id": "$.id",
    "data": {"amount": "$.data.object.amount"},
}
NO_ID = {"type": "$.kind", "user_id": "$.user"}  # ids from X-EventPulse-Delivery, time from the signature


def charge(event_id: str, amount: int = 100) -> bytes:
    created = int(time.time())
    return orjson.dumps(
        {
            "id": event_id,
            "type": "charge.succeeded",
            "created": created,
            "data": {"object": {"customer": "cus_1", "amount": amount}},
        }
    )


@pytest.fixture
def hooked(broker_settings, warehouse) -> Iterator[tuple[RunningGateway, dict[str, str]]]:
    """A gateway with sources acme-pay (STRIPE_LIKE), acme-shop (NO_ID) of acme and globex-pay of globex."""
    settings = with_webhooks(gateway_settings(broker_settings, warehouse))
    secrets = {
        "acme-pay": register_webhook(settings, "acme", "acme-pay", STRIPE_LIKE),
        "acme-shop": register_webhook(settings, "acme", "acme-shop", NO_ID),
        "globex-pay": register_webhook(settings, "globex", "globex-pay", STRIPE_LIKE),
    }
    with serve(settings) as gw:
        for source in secrets:
            wait_for_source(gw, source)
        yield gw, secrets


def _stored(settings: Settings) -> Counter[tuple[str, str]]:
    """(tenant, id) -> rows in ``events FINAL``."""
    client = create_client(settings.warehouse, role="admin")
    try:
        rows = client.query("SELECT tenant, id, count() FROM events FINAL GROUP BY tenant, id").result_rows
    finally:
        client.close()
    return Counter({(tenant, event_id): n for tenant, event_id, n in rows})


def test_a_signed_delivery_lands_exactly_once_also_when_retried(hooked) -> None:
    gw, secrets = hooked
    pay, shop = secrets["acme-pay"], secrets["acme-shop"]
    first, second = charge("evt_1"), charge("evt_2")
    shop_body = orjson.dumps({"kind": "order.created", "user": "u7"})
    now = int(time.time())
    with gw.client() as http:
        accepted = post_webhook(http, "acme-pay", pay, first, at=now)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json() == {"id": "acme-pay:evt_1", "duplicate": False}
        # The sender retries (its ack was lost): the same event, signed anew a second later.
        retried = post_webhook(http, "acme-pay", pay, first, at=now + 1)
        assert retried.status_code == 202 and retried.json() == {"id": "acme-pay:evt_1", "duplicate": True}
        assert post_webhook(http, "acme-pay", pay, second, at=now).json()["duplicate"] is False
        # Ids from the delivery header: the retry carries the same delivery id.
        for at in (now, now + 2):
            shop_answer = post_webhook(http, "acme-shop", shop, shop_body, at=at, delivery="dlv-1")
            assert shop_answer.status_code == 202, shop_answer.text
        assert shop_answer.json() == {"id": "acme-shop:dlv-1", "duplicate": True}
        # A sender that gives each retry a fresh delivery id (and no id in the body) makes two events.
        for at, delivery in ((now + 3, "dlv-2a"), (now + 4, "dlv-2b")):
            assert post_webhook(http, "acme-shop", shop, shop_body, at=at, delivery=delivery).status_code == 202
        # globex's source: the same third-party id is another tenant's event.
        assert post_webhook(http, "globex-pay", secrets["globex-pay"], first, at=now).status_code == 202
    expected = {
        ("acme", "acme-pay:evt_1"): 1,
        ("acme", "acme-pay:evt_2"): 1,
        ("acme", "acme-shop:dlv-1"): 1,
        ("acme", "acme-shop:dlv-2a"): 1,
        ("acme", "acme-shop:dlv-2b"): 1,
        ("globex", "globex-pay:evt_1"): 1,
    }
    broker = gw.settings.broker
    on_topic = Counter((v["tenant"], v["id"]) for _, v in read_topic(broker.bootstrap, broker.events_topic, expect=6))
    assert on_topic == expected  # nothing produced twice
    run_flow_until_drained(broker, gw.settings.warehouse)
    assert _stored(gw.settings) == expected
    client = create_client(gw.settings.warehouse, role="admin")
    row = client.query(
        "SELECT type, source, user_id, JSONExtractInt(data, 'amount') FROM events FINAL WHERE id = 'acme-pay:evt_2'"
    ).result_rows
    client.close()
    assert row == [("charge.succeeded", "acme-pay", "cus_1", 100)]


def test_control_without_the_id_memory_a_retry_lands_twice(broker_settings, warehouse) -> None:
    """The negative control of the test above: with the gateway's id memory off (recent_ids_ttl_s=0), a
    retry of a delivery whose time comes from its signature is produced again and lands twice."""
    settings = with_webhooks(gateway_settings(broker_settings, warehouse, recent_ids_ttl_s=0))
    secret = register_webhook(settings, "acme", "acme-shop", NO_ID)
    body = orjson.dumps({"kind": "order.created", "user": "u7"})
    now = int(time.time())
    with serve(settings) as gw:
        wait_for_source(gw, "acme-shop")
        with gw.client() as http:
            answers = [post_webhook(http, "acme-shop", secret, body, at=at, delivery="dlv-1") for at in (now, now + 2)]
    assert [a.json() for a in answers] == [{"id": "acme-shop:dlv-1", "duplicate": False}] * 2
    run_flow_until_drained(settings.broker, settings.warehouse)
    assert _stored(settings) == {("acme", "acme-shop:dlv-1"): 2}


def test_refusals_produce_nothing_and_bad_payloads_are_dead_lettered(hooked) -> None:
    gw, secrets = hooked
    pay = secrets["acme-pay"]
    body = charge("evt_r")
    now = int(time.time())
    tolerance = gw.settings.webhooks.tolerance_s
    with gw.client() as http:

        def status(response):
            return response.status_code, response.json()["error"]

        assert status(post_webhook(http, "acme-pay", pay, body, header="")) == (401, "missing_signature")
        assert status(post_webhook(http, "acme-pay", "x" * 30, body)) == (401, "invalid_signature")
        assert status(post_webhook(http, "acme-pay", secrets["globex-pay"], body)) == (401, "invalid_signature")
        assert status(post_webhook(http, "acme-pay", pay, body, at=now - tolerance - 5)) == (401, "stale_timestamp")
        assert status(post_webhook(http, "acme-pay", pay, body, at=now + tolerance + 5)) == (401, "stale_timestamp")
        assert status(post_webhook(http, "nobody", pay, body)) == (401, "invalid_signature")
        delivered = post_webhook(http, "acme-pay", pay, body, at=now)
        header = delivered.request.headers["x-eventpulse-signature"]
        assert delivered.status_code == 202
        assert status(post_webhook(http, "acme-pay", pay, body, header=header)) == (409, "replayed_delivery")
        assert status(post_webhook(http, "acme-pay", pay, body.replace(b"evt_r", b"evt_s"), header=header)) == (
            401,
            "invalid_signature",
        )
        unmappable = orjson.dumps({"id": "evt_u", "created": now, "data": {"object": {"customer": "c"}}})
        answer = post_webhook(http, "acme-pay", pay, unmappable, at=now + 10, delivery="dlv-u")
        assert answer.status_code == 422 and answer.json()["error"] == "unmappable"
        assert answer.json()["errors"][0]["field"] == "type"
        # The sender retries the unmappable delivery: still one dead letter (its id is the delivery's).
        assert post_webhook(http, "acme-pay", pay, unmappable, at=now + 11, delivery="dlv-u").status_code == 422
        malformed = post_webhook(http, "acme-pay", pay, b'{"id": "evt_m",')
        assert status(malformed) == (400, "malformed_json")
        old = orjson.dumps({"id": "evt_o", "type": "t", "created": 1_000_000, "data": {"object": {"customer": "c"}}})
        invalid = post_webhook(http, "acme-pay", pay, old)
        assert (
            status(invalid) == (422, "invalid_event") and invalid.json()["errors"][0]["reason"] == "timestamp_too_old"
        )
        big = orjson.dumps({"pad": "x" * gw.settings.webhooks.max_body_bytes})
        assert status(post_webhook(http, "acme-pay", pay, big)) == (413, "payload_too_large")
        form = http.post(
            "/api/webhooks/acme-pay", content=b"a=1", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert form.status_code == 415
    broker = gw.settings.broker
    messages = read_topic(broker.bootstrap, broker.events_topic, expect=1)
    assert [v["id"] for _, v in messages] == ["acme-pay:evt_r"]  # only the one signed, fresh, first delivery
    rows = dead_letters(gw.settings.warehouse, 3)
    assert sorted((r[0], r[1]) for r in rows) == [
        ("malformed_json", ""),
        ("timestamp_too_old", "timestamp"),
        ("unmappable", "type"),
    ]
    assert any(orjson.loads(r[3])["id"] == "evt_u" for r in rows if r[0] == "unmappable")  # the payload as sent
    metrics = gw.services.metrics
    assert metrics.events_rejected["unmappable"] == 2 and metrics.events_accepted == 1


def test_a_revoked_source_is_refused_within_seconds(hooked) -> None:
    gw, secrets = hooked
    client = create_client(gw.settings.warehouse, role="admin")
    revoke_source(client, "acme", "acme-shop")
    client.close()
    deadline = time.monotonic() + 10
    while gw.services.webhook_sources.get("acme-shop") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    with gw.client() as http:
        answer = post_webhook(http, "acme-shop", secrets["acme-shop"], b'{"kind": "k", "user": "u"}', delivery="d")
    assert answer.status_code == 401


def test_a_gateway_without_the_secrets_key_refuses_deliveries_with_503(broker_settings, warehouse, tmp_path) -> None:
    """Sources exist but this gateway has no key to decrypt their secrets (nor a key file): it cannot
    verify a signature, so it answers 503 and says why rather than 401 to a correctly signed delivery."""
    registered = with_webhooks(gateway_settings(broker_settings, warehouse))
    secret = register_webhook(registered, "acme", "acme-pay", STRIPE_LIKE)
    keyless = gateway_settings(broker_settings, warehouse).model_copy(update={"data_dir": tmp_path})
    with serve(keyless) as gw, gw.client() as http:
        answer = post_webhook(http, "acme-pay", secret, charge("evt_k"))
        error = gw.services.webhook_sources.last_error
    assert answer.status_code == 503 and answer.json()["error"] == "webhooks_unavailable"
    assert answer.headers["retry-after"] and "EVENTPULSE_WEBHOOKS_SECRETS_KEY" in (error or "")


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "control-per-process"])
def test_a_replay_to_another_replica_is_refused_through_redis(
    shared: bool, broker_settings, warehouse, redis_settings: RedisSettings
) -> None:
    base = gateway_settings(broker_settings, warehouse, redis_settings if shared else None)
    settings = with_webhooks(base)
    secret = register_webhook(settings, "acme", "acme-pay", STRIPE_LIKE)
    other = settings.model_copy(update={"gateway": settings.gateway.model_copy(update={"port": free_port()})})
    body = charge(f"evt_{uuid.uuid4().hex[:8]}")
    with serve(settings) as first, serve(other) as second:
        wait_for_source(first, "acme-pay")
        wait_for_source(second, "acme-pay")
        with first.client() as one, second.client() as two:
            accepted = post_webhook(one, "acme-pay", secret, body)
            header = accepted.request.headers["x-eventpulse-signature"]
            replayed = post_webhook(two, "acme-pay", secret, body, header=header)
    assert accepted.status_code == 202
    if shared:
        assert replayed.status_code == 409 and replayed.json()["error"] == "replayed_delivery"
    else:  # each process remembers only its own signatures: the replay is produced again
        assert replayed.status_code == 202 and replayed.json()["duplicate"] is False
