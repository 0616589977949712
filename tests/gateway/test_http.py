"""Health, readiness, metrics (JSON and Prometheus), request ids and CORS."""

from tests.gateway.conftest import event, wait_for_key


def test_health_ready_and_metrics(gateway, make_key):
    key = make_key("acme")
    wait_for_key(gateway, key)
    with gateway.client(key) as http:
        health = http.get("/api/health").json()
        assert health["status"] == "ok"
        assert health["shared_state"]["mode"] == "local" and "per process" in health["shared_state"]["detail"]
        ready = http.get("/api/health/ready")
        assert ready.status_code == 200
        deps = ready.json()["dependencies"]
        assert deps["broker"]["ok"] and deps["warehouse"]["ok"] and deps["broker"]["latency_ms"] >= 0
        http.post("/api/events/batch", json=[event("m1"), {"type": "x"}])
        metrics = http.get("/api/metrics").json()
        prometheus = http.get("/metrics")
    assert metrics["events_accepted"] == 1
    assert metrics["events_rejected"] == {"missing_field": 1}
    assert metrics["produce_latency_ms"]["p99"] > 0
    assert {"route": "/api/events/batch", "status": 207, "count": 1} in metrics["requests"]
    assert prometheus.headers["content-type"].startswith("text/plain")
    assert 'eventpulse_gateway_events_rejected_total{reason="missing_field"} 1' in prometheus.text
    assert "eventpulse_gateway_producer_queue_depth 0" in prometheus.text
    assert "eventpulse_gateway_shared_state_up 0" in prometheus.text  # no Redis configured


def test_request_ids_are_returned_and_kept(gateway):
    with gateway.client() as http:
        mine = http.get("/api/health", headers={"X-Request-ID": "req-123"})
        generated = http.post("/api/events", json=event())  # even a 401 carries one
    assert mine.headers["x-request-id"] == "req-123"
    assert generated.status_code == 401 and len(generated.headers["x-request-id"]) == 36


def test_cors_when_configured(start_gateway):
    with start_gateway(cors_origins=("https://app.example",)) as gw, gw.client() as http:
        preflight = http.options(
            "/api/events",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "X-API-Key, Content-Type",
            },
        )
        other = http.get("/api/health", headers={"Origin": "https://evil.example"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in other.headers
