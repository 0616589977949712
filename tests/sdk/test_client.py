"""The clients against a local fake of the batch route: batching by size and time, gzip, retries
with the same ids, Retry-After, overflow policies, flush and close, asyncio."""

import asyncio
import gzip
import subprocess
import sys
import threading
import time

import pytest
from eventpulse_sdk import AsyncClient, Client, ClientClosedError, ClientConfig, QueueFullError

from tests.sdk.fake_gateway import accept, fake_gateway
from tests.support.services import free_port

SERVED = pytest.mark.integration
"""Tests that start a server (the fake gateway on a free port) belong to the integration tier."""


def _config(url: str, **settings) -> ClientConfig:
    defaults = {"api_key": "ep_test", "flush_interval_s": 60.0, "backoff_initial_s": 0.01, "shutdown_timeout_s": 5}
    return ClientConfig(endpoint=url, **{**defaults, **settings})


@SERVED
def test_batches_by_size_then_flush_sends_the_rest_gzip_compressed() -> None:
    with fake_gateway() as fake, Client(config=_config(fake.url, batch_size=100)) as client:
        ids = [client.capture("user_action", "web_app", {"n": i}, user_id=f"u{i}") for i in range(250)]
        deadline = time.monotonic() + 10
        while len(fake.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [len(r.events) for r in fake.requests] == [100, 100]  # the rest waits (flush_interval 60 s)
        assert client.flush(10)
        assert [len(r.events) for r in fake.requests] == [100, 100, 50]
        request = fake.requests[0]
        assert request.path == "/api/events/batch" and request.headers["content-encoding"] == "gzip"
        assert request.headers["x-api-key"] == "ep_test" and request.headers["content-type"] == "application/json"
        assert len(request.raw) < len(gzip.decompress(request.raw)) / 3
        assert [e["id"] for e in fake.events] == ids
        first = fake.events[0]
        assert first["type"] == "user_action" and first["source"] == "web_app"
        assert first["data"] == {"n": 0, "user_id": "u0"} and isinstance(first["timestamp"], int)
        assert client.stats.delivered == 250 and client.stats.requests == 3


@SERVED
def test_a_partial_batch_goes_after_flush_interval() -> None:
    with fake_gateway() as fake, Client(config=_config(fake.url, flush_interval_s=0.2)) as client:
        started = time.monotonic()
        for i in range(3):
            client.capture("t", "s", {"n": i})
        while not fake.requests and time.monotonic() - started < 5:
            time.sleep(0.01)
        waited = time.monotonic() - started
        assert len(fake.requests) == 1 and len(fake.requests[0].events) == 3
        assert 0.15 <= waited < 2


@SERVED
def test_503_is_retried_after_retry_after_with_the_same_events() -> None:
    with fake_gateway() as fake:
        answers = iter([(503, {"Retry-After": "1"}, {"error": "broker_unavailable", "detail": "", "retry_after_s": 1})])
        fake.answer = lambda r: next(answers, None) or accept(r.events)
        with Client(config=_config(fake.url)) as client:
            for i in range(5):
                client.capture("t", "s", {"n": i}, timestamp=1_700_000_000_000 + i)
            started = time.monotonic()
            assert client.flush(10)
            assert time.monotonic() - started >= 1.0  # the Retry-After was honoured
        first, second = fake.requests
        assert first.events == second.events  # same ids, same timestamps: the gateway recognises the resend
        assert client.stats.delivered == 5 and client.stats.retries == 1


def test_connection_errors_are_retried_then_reported_failed() -> None:
    reports = []
    config = _config(f"http://127.0.0.1:{free_port()}", max_retries=2)
    with Client(config=config, on_report=reports.append) as client:
        event_id = client.capture("t", "s")
        assert client.flush(10)
        assert client.stats.failed == 1 and client.stats.requests == 3 and client.stats.retries == 2
    assert [f.id for r in reports for f in r.failed] == [event_id]
    assert "ConnectError" in reports[0].failed[0].error


@SERVED
def test_rejected_events_are_reported_with_the_gateways_reason() -> None:
    reports = []
    with fake_gateway() as fake:

        def answer(request):
            ids = [e["id"] for e in request.events]
            error = {"index": 1, "field": "type", "reason": "invalid_value", "detail": "bad"}
            body = {"accepted": 1, "rejected": 1, "duplicates": 0, "ids": [ids[0], None], "errors": [error]}
            return 207, {}, body

        fake.answer = answer
        with Client(config=_config(fake.url), on_report=reports.append) as client:
            good, bad = client.capture("t", "s"), client.capture("t", "s")
            assert client.flush(10)
    assert reports[0].delivered == [good]
    assert [(r.id, r.reason) for r in reports[0].rejected] == [(bad, "invalid_value")]
    assert len(fake.requests) == 1  # a rejection is not retried


@pytest.fixture
def stalled():
    """A fake gateway that holds every request until ``release`` is set."""
    release = threading.Event()
    with fake_gateway() as fake:

        def answer(request):
            release.wait(10)
            return accept(request.events)

        fake.answer = answer
        yield fake, release
        release.set()


def _fill(client: Client, fake, n: int) -> list:
    ids = [client.capture("t", "s", {"n": i}) for i in range(n)]
    deadline = time.monotonic() + 5
    while not fake.requests and time.monotonic() < deadline:  # the first batch is in flight, stuck
        time.sleep(0.01)
    return ids


@SERVED
def test_overflow_drop_newest(stalled) -> None:
    fake, release = stalled
    with Client(config=_config(fake.url, batch_size=2, max_queue_size=4)) as client:
        ids = _fill(client, fake, 4)
        assert client.capture("t", "s") is None
        release.set()
        assert client.flush(10)
        assert client.stats.dropped == 1 and client.stats.delivered == 4
        assert [e["id"] for e in fake.events] == ids


@SERVED
def test_overflow_drop_oldest(stalled) -> None:
    fake, release = stalled
    with Client(config=_config(fake.url, batch_size=2, max_queue_size=4, overflow="drop_oldest")) as client:
        ids = _fill(client, fake, 4)
        newest = client.capture("t", "s")
        release.set()
        assert client.flush(10)
        # the batch in flight (0, 1) cannot be taken back: the oldest waiting event (2) made room
        assert [e["id"] for e in fake.events] == [ids[0], ids[1], ids[3], newest]
        assert client.stats.dropped == 1


@SERVED
def test_overflow_raise_and_block(stalled) -> None:
    fake, release = stalled
    with Client(config=_config(fake.url, batch_size=2, max_queue_size=4, overflow="raise")) as client:
        _fill(client, fake, 4)
        with pytest.raises(QueueFullError):
            client.capture("t", "s")
        release.set()
    release.clear()
    fake.requests.clear()
    config = _config(fake.url, batch_size=2, max_queue_size=4, overflow="block", block_timeout_s=0.3)
    with Client(config=config) as client:
        _fill(client, fake, 4)
        started = time.monotonic()
        assert client.capture("t", "s") is None  # waited, no room came: dropped
        assert 0.25 <= time.monotonic() - started < 3
        threading.Timer(0.2, release.set).start()
        assert client.capture("t", "s") is not None  # room came while it waited
        assert client.flush(10)


@SERVED
def test_close_sends_what_is_queued_and_refuses_more() -> None:
    with fake_gateway() as fake:
        client = Client(config=_config(fake.url))
        for i in range(7):
            client.capture("t", "s", {"n": i})
        assert client.close()
        assert len(fake.events) == 7
        with pytest.raises(ClientClosedError):
            client.capture("t", "s")


def test_close_gives_up_at_its_deadline() -> None:
    config = _config(f"http://127.0.0.1:{free_port()}", max_retries=None, backoff_initial_s=0.2)
    client = Client(config=config)
    client.capture("t", "s")
    started = time.monotonic()
    assert client.close(timeout=1.0) is False
    assert time.monotonic() - started < 3
    assert client.stats.failed == 1


@SERVED
def test_async_client_batches_retries_and_closes() -> None:
    with fake_gateway() as fake:
        answers = iter([(429, {"Retry-After": "0.2"}, {"error": "rate_limited", "detail": ""})])
        fake.answer = lambda r: next(answers, None) or accept(r.events)

        async def main() -> list:
            async with AsyncClient(config=_config(fake.url, batch_size=10)) as client:
                ids = [await client.capture("t", "s", {"n": i}) for i in range(25)]
                ids.append(client.capture_nowait("t", "s"))
                assert await client.flush(10)
                assert client.stats.delivered == 26 and client.stats.retries == 1
                return ids

        ids = asyncio.run(main())
    assert fake.requests[0].events == fake.requests[1].events  # the 429'd batch, resent as it was
    assert sorted(e["id"] for r in fake.requests[1:] for e in r.events) == sorted(ids)


def test_settings_from_the_environment_and_their_checks() -> None:
    env = {"EVENTPULSE_SDK_API_KEY": "ep_x", "EVENTPULSE_SDK_BATCH_SIZE": "50", "EVENTPULSE_SDK_GZIP": "false"}
    env["EVENTPULSE_SDK_MAX_RETRIES"] = "none"
    config = ClientConfig.from_env(env, flush_interval_s=0.5)
    assert (config.api_key, config.batch_size, config.gzip, config.max_retries) == ("ep_x", 50, False, None)
    assert config.flush_interval_s == 0.5
    assert Client("ep_arg", config=config).config.api_key == "ep_arg"  # an argument beats the environment
    with pytest.raises(ValueError, match="overflow"):
        ClientConfig(overflow="explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        ClientConfig(batch_size=0)
    with pytest.raises(ValueError):
        Client(config=ClientConfig()).capture("t", "s", {"x": float("nan")})


EXIT_SCRIPT = """
import asyncio, sys
from eventpulse_sdk import AsyncClient, Client, ClientConfig
config = ClientConfig(endpoint=sys.argv[1], api_key="ep_test", flush_interval_s=60)
client = Client(config=config)
for i in range(10):
    client.capture("t", "sync", {"n": i})

async def main():  # returns with the async client open and its events unsent
    aclient = AsyncClient(config=config)
    for i in range(5):
        await aclient.capture("t", "async", {"n": i})

asyncio.run(main())
"""


@SERVED
def test_what_is_queued_is_sent_at_interpreter_exit() -> None:
    with fake_gateway() as fake:
        subprocess.run([sys.executable, "-c", EXIT_SCRIPT, fake.url], check=True, timeout=60)
    assert sorted((e["source"], e["data"]["n"]) for e in fake.events) == sorted(
        [("sync", i) for i in range(10)] + [("async", i) for i in range(5)]
    )
