"""Process tuning applied by a serving gateway: the garbage collector's thresholds and frozen heap."""

import gc
import pickle

from gateway.runtime import tune_gc
from gateway.server import DeadlineProtocol, ReadDeadlines


def test_tune_gc_raises_the_young_threshold_and_freezes_the_startup_heap():
    before = gc.get_threshold()
    try:
        tune_gc(12_345, freeze=True)
        assert gc.get_threshold() == (12_345, before[1], before[2])
        assert gc.get_freeze_count() > 0
        tune_gc(0, freeze=False)  # 0 keeps what is set
        assert gc.get_threshold()[0] == 12_345
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_python_m_gateway_serves_with_uvloop_httptools_and_no_server_header(monkeypatch):
    import uvicorn

    import gateway.__main__ as entry

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(app=app, **kwargs))
    monkeypatch.setattr(entry, "configure_logging", lambda level: None)
    entry.main(["--port", "8123", "--workers", "2"])
    assert seen["app"] == "gateway.app:create_app" and seen["factory"] is True
    assert (seen["port"], seen["workers"]) == (8123, 2)
    assert seen["loop"] == "uvloop"
    protocol = seen["http"]  # uvicorn's httptools protocol with the read deadlines, picklable for --workers
    assert protocol.func is DeadlineProtocol and protocol.keywords["deadlines"] == ReadDeadlines(10.0, 30.0)
    assert pickle.loads(pickle.dumps(protocol)).keywords == protocol.keywords
    assert (seen["limit_concurrency"], seen["timeout_keep_alive"]) == (4096, 5)
    assert seen["server_header"] is False and seen["access_log"] is False
    assert seen["proxy_headers"] is False  # a setting: behind a load balancer, turn it on
    monkeypatch.setenv("EVENTPULSE_GATEWAY_PROXY_HEADERS", "true")
    monkeypatch.setenv("EVENTPULSE_GATEWAY_FORWARDED_ALLOW_IPS", "10.0.0.1")
    entry.main([])
    assert seen["proxy_headers"] is True and seen["forwarded_allow_ips"] == "10.0.0.1"
    for name, value in {"HEADER_TIMEOUT_S": "0", "BODY_TIMEOUT_S": "0", "MAX_CONNECTIONS": "0"}.items():
        monkeypatch.setenv(f"EVENTPULSE_GATEWAY_{name}", value)
    entry.main([])  # every one off: uvicorn's own protocol, no limit
    assert (seen["http"], seen["limit_concurrency"]) == ("httptools", None)
