"""The delivery guarantee: a 2xx means the broker has the events. Uses its own broker, which it freezes
(SIGSTOP) and kills, and a gateway subprocess that it kills with SIGKILL."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from eventpulse.broker.admin import admin_client, ensure_topics
from eventpulse.config.broker import BrokerSettings
from tests.gateway.conftest import event, gateway_settings, read_topic, serve, wait_for_key
from tests.support.services import free_port, stop


@contextmanager
def own_broker(workdir: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """A Tansu broker in its own process group (so the whole group can be frozen and resumed)."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "eventpulse.broker",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--partitions",
        "2",
        "--storage",
        "memory",
    ]
    with (workdir / "broker.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        settings = BrokerSettings(bootstrap=f"127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        while True:
            try:
                ensure_topics(admin_client(settings), {"events": 2}, timeout=2)
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        yield proc, settings.bootstrap
    finally:
        os.killpg(proc.pid, signal.SIGCONT)
        stop(proc)


def _gateway_process(bootstrap: str, warehouse, port: int, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "EVENTPULSE_BROKER_BOOTSTRAP": bootstrap,
        "EVENTPULSE_BROKER_EVENTS_TOPIC": "events",
        "EVENTPULSE_WAREHOUSE_URL": warehouse.url,
        "EVENTPULSE_WAREHOUSE_DATABASE": warehouse.database,
        "EVENTPULSE_GATEWAY_PORT": str(port),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gateway"], stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health/ready", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        assert proc.poll() is None, log.read_text()
        time.sleep(0.1)
    proc.kill()
    raise TimeoutError(log.read_text())


def test_acknowledged_events_survive_a_frozen_broker_and_a_killed_gateway(tmp_path, warehouse, make_key):
    key = make_key("acme")
    with own_broker(tmp_path) as (broker, bootstrap):
        port = free_port()
        gateway = _gateway_process(bootstrap, warehouse, port, tmp_path / "gateway.log")
        try:
            acked: list[str] = []
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}, timeout=30) as http:
                deadline = time.monotonic() + 10
                while http.post("/api/events", json=event("probe")).status_code == 401:  # key cache warming
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
                acked.append("probe")
                for b in range(20):
                    batch = [event(f"d-{b}-{i}", data={"user_id": f"u{i}"}) for i in range(50)]
                    response = http.post("/api/events/batch", json=batch)
                    assert response.status_code == 202, response.text
                    acked.extend(response.json()["ids"])
                # The moment the last 2xx arrives: freeze the broker, kill the gateway without warning.
                os.killpg(broker.pid, signal.SIGSTOP)
                gateway.kill()
                gateway.wait()
            os.killpg(broker.pid, signal.SIGCONT)
            messages = read_topic(bootstrap, "events", expect=len(acked))
            ids = [v["id"] for _, v in messages]
            assert sorted(ids) == sorted(acked)  # every acknowledged event, exactly once
        finally:
            if gateway.poll() is None:
                gateway.kill()


def test_broker_outage_answers_503_and_a_retry_loses_nothing(tmp_path, warehouse, make_key):
    key = make_key("acme")
    with own_broker(tmp_path) as (broker, bootstrap):
        broker_settings = BrokerSettings(bootstrap=bootstrap, events_topic="events")
        settings = gateway_settings(broker_settings, warehouse, ack_timeout_s=1.5, retry_after_s=3)
        with serve(settings) as gw, gw.client(key) as http:
            wait_for_key(gw, key)
            assert http.post("/api/events/batch", json=[event("before")]).status_code == 202
            os.killpg(broker.pid, signal.SIGSTOP)  # the broker stops answering
            batch = [event(f"o-{i}", data={"user_id": f"u{i}"}) for i in range(20)]
            started = time.monotonic()
            refused = http.post("/api/events/batch", json=batch)
            assert refused.status_code == 503, refused.text
            assert time.monotonic() - started < 5
            assert refused.headers["retry-after"] == "3"
            body = refused.json()
            assert body["error"] == "broker_unavailable"
            assert sorted(body["not_accepted"]) == sorted(e["id"] for e in batch)
            ready = http.get("/api/health/ready")
            assert ready.status_code == 503 and ready.json()["dependencies"]["broker"]["ok"] is False
            os.killpg(broker.pid, signal.SIGCONT)
            # The client resends the same events after Retry-After.
            deadline = time.monotonic() + 20
            while (retry := http.post("/api/events/batch", json=batch)).status_code != 202:
                assert time.monotonic() < deadline, retry.text
                time.sleep(0.5)
        messages = read_topic(bootstrap, "events", idle_s=2.0)
        ids = [v["id"] for _, v in messages]
        assert set(ids) == {"before"} | {e["id"] for e in batch}  # nothing lost
        assert ids.count("before") == 1  # duplicates only among the refused-then-resent (dedup downstream)


def test_single_events_answer_503_when_unacknowledged_or_overloaded(tmp_path, warehouse, make_key):
    """The single-event route has its own produce path (`deliver_one`): both of its refusals, then the resend."""
    key = make_key("acme")
    with own_broker(tmp_path) as (broker, bootstrap):
        broker_settings = BrokerSettings(bootstrap=bootstrap, events_topic="events")
        settings = gateway_settings(broker_settings, warehouse, ack_timeout_s=2.0, retry_after_s=3, max_queued_events=1)
        with serve(settings) as gw, gw.client(key) as http:
            wait_for_key(gw, key)
            assert http.post("/api/events", json=event("before")).status_code == 202
            os.killpg(broker.pid, signal.SIGSTOP)
            first: dict = {}
            waiting = threading.Thread(target=lambda: first.update(r=http.post("/api/events", json=event("a"))))
            waiting.start()
            deadline = time.monotonic() + 5
            while gw.client().get("/api/metrics").json()["producer_queue_depth"] < 1:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            overloaded = gw.client(key).post("/api/events", json=event("b"))  # "a" fills the queue
            waiting.join()
            assert overloaded.status_code == 503 and overloaded.headers["retry-after"] == "3"
            assert overloaded.json()["error"] == "overloaded" and overloaded.json()["not_accepted"] == ["b"]
            refused = first["r"]
            assert refused.status_code == 503 and refused.headers["retry-after"] == "3", refused.text
            body = refused.json()
            assert body["error"] == "broker_unavailable"
            assert body["not_accepted"] == ["a"] and body["accepted"] == []
            os.killpg(broker.pid, signal.SIGCONT)
            for event_id in ("a", "b"):
                deadline = time.monotonic() + 20
                while (retry := http.post("/api/events", json=event(event_id))).status_code != 202:
                    assert time.monotonic() < deadline, retry.text
                    time.sleep(0.5)
        on_topic = {v["id"] for _, v in read_topic(bootstrap, "events", idle_s=2.0)}
        assert on_topic == {"before", "a", "b"}  # nothing answered 2xx or resent is missing


@pytest.mark.parametrize("max_queued", [10])
def test_a_saturated_producer_sheds_load_with_503(start_gateway, make_key, max_queued):
    with start_gateway(max_queued_events=max_queued) as gw:
        key = make_key("acme")
        wait_for_key(gw, key)
        with gw.client(key) as http:
            response = http.post("/api/events/batch", json=[event(f"s-{i}") for i in range(11)])
            assert response.status_code == 503
            assert response.json()["error"] == "overloaded" and len(response.json()["not_accepted"]) == 11
            assert "retry-after" in response.headers
            assert http.post("/api/events/batch", json=[event(f"t-{i}") for i in range(10)]).status_code == 202
