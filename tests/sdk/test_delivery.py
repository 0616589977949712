"""The delivery rules without any I/O: backoff, Retry-After, and what each gateway answer means."""

import email.utils
import gzip
import json
import random
import time
import uuid

from eventpulse_sdk import ClientConfig, uuid7
from eventpulse_sdk._delivery import Backoff, Post, Reply, Sleep, Transport, deliver, parse_retry_after
from eventpulse_sdk.events import QueuedEvent, encode_event


def _events(n: int) -> list[QueuedEvent]:
    return [QueuedEvent(*encode_event("t", "s", {"n": i}), seq=i) for i in range(n)]


def _run(events, answers, **settings):
    """Drive `deliver` with scripted answers; return (outcome, posts, sleeps)."""
    config = ClientConfig(**settings)
    transport = Transport(config.gzip)
    gen = deliver(events, config, transport, Backoff(config, random.Random(1)))
    posts, sleeps, answers = [], [], list(answers)
    try:
        command = next(gen)
        while True:
            if isinstance(command, Sleep):
                sleeps.append(command.seconds)
                command = gen.send(None)
            else:
                assert isinstance(command, Post)
                body = gzip.decompress(command.body) if command.headers.get("Content-Encoding") else command.body
                sent = json.loads(body)
                posts.append((command.headers, sent))
                answer = answers.pop(0)
                command = gen.send(answer(sent) if callable(answer) else answer)
    except StopIteration as stop:
        return stop.value, posts, sleeps, transport


def _reply(status: int, doc: dict, **headers: str) -> Reply:
    return Reply(status, headers, json.dumps(doc).encode())


def _ok(sent):
    return _reply(
        202, {"accepted": len(sent), "rejected": 0, "duplicates": 0, "ids": [e["id"] for e in sent], "errors": []}
    )


def test_full_jitter_stays_within_the_doubling_bound_and_spreads() -> None:
    backoff = Backoff(ClientConfig(backoff_initial_s=0.1, backoff_max_s=2.0), random.Random(7))
    for retry in range(1, 12):
        bound = min(2.0, 0.1 * 2 ** (retry - 1))
        delays = [backoff.delay(retry, None) for _ in range(200)]
        assert all(0 <= d <= bound for d in delays)
        assert max(delays) > 0.8 * bound and min(delays) < 0.2 * bound  # full jitter: the whole range


def test_retry_after_is_waited_for_in_full_and_capped() -> None:
    backoff = Backoff(ClientConfig(backoff_initial_s=0.1, retry_after_max_s=5), random.Random(7))
    assert 3 <= backoff.delay(1, 3.0) <= 3.1
    assert 5 <= backoff.delay(1, 3600.0) <= 5.1
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 1.5 ") == 1.5
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= parse_retry_after(later) <= 31  # an HTTP-date
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_retry_after("-4") == 0.0


def test_uuid7_is_version_7_and_time_ordered() -> None:
    ids = [uuid7() for _ in range(50)]
    time.sleep(0.002)
    later = uuid7()
    for text in [*ids, later]:
        value = uuid.UUID(text)
        assert value.version == 7 and value.variant == uuid.RFC_4122
    assert all(text < later for text in ids)
    assert len(set(ids)) == 50


def test_207_resolves_each_event_and_rejections_are_not_retried() -> None:
    events = _events(3)
    answer = _reply(
        207,
        {
            "accepted": 2,
            "rejected": 1,
            "duplicates": 1,
            "ids": [events[0].id, None, events[2].id],
            "errors": [{"index": 1, "field": "timestamp", "reason": "timestamp_too_old", "detail": "old"}],
        },
    )
    outcome, posts, sleeps, _ = _run(events, [answer])
    assert outcome.report.delivered == [events[0].id, events[2].id]
    assert [(r.id, r.reason, r.field) for r in outcome.report.rejected] == [
        (events[1].id, "timestamp_too_old", "timestamp")
    ]
    assert outcome.report.duplicates == 1 and len(posts) == 1 and sleeps == []


def test_503_resends_only_what_was_not_accepted_with_the_same_ids_after_retry_after() -> None:
    events = _events(4)
    ids = [e.id for e in events]
    unavailable = _reply(
        503,
        {
            "error": "broker_unavailable",
            "detail": "x",
            "retry_after_s": 2,
            "not_accepted": ids[2:],
            "accepted": ids[:2],
        },
        **{"retry-after": "2"},
    )
    outcome, posts, sleeps, _ = _run(events, [unavailable, _ok])
    assert [e["id"] for e in posts[1][1]] == ids[2:]
    assert posts[1][1] == posts[0][1][2:]  # byte for byte the same events: id and timestamp kept
    assert sorted(outcome.report.delivered) == sorted(ids)
    assert len(sleeps) == 1 and 2 <= sleeps[0] <= 2.2
    assert outcome.retries == 1 and outcome.requests == 2


def test_transport_errors_and_429_are_retried_until_max_retries_then_failed() -> None:
    events = _events(2)
    limited = _reply(429, {"error": "rate_limited", "detail": "slow down"}, **{"retry-after": "1"})
    outcome, posts, sleeps, _ = _run(events, [ConnectionError("refused"), limited, ConnectionError("x")], max_retries=2)
    assert len(posts) == 3 and len(sleeps) == 2
    assert 1 <= sleeps[1] <= 1.2  # the 429's Retry-After
    assert [f.id for f in outcome.report.failed] == [e.id for e in events]
    assert "gave up after 3 attempts" in outcome.report.failed[0].error
    assert outcome.report.delivered == []


def test_413_splits_the_batch_and_415_turns_compression_off() -> None:
    events = _events(4)
    too_large = _reply(413, {"error": "payload_too_large", "detail": "big"})
    outcome, posts, _, _ = _run(events, [too_large, _ok, _ok])
    assert [len(p[1]) for p in posts] == [4, 2, 2]
    assert len(outcome.report.delivered) == 4

    refused = _reply(415, {"error": "unsupported_media_type", "detail": "gzip?"})
    outcome, posts, _, transport = _run(events, [refused, _ok])
    assert posts[0][0]["Content-Encoding"] == "gzip" and "Content-Encoding" not in posts[1][0]
    assert transport.gzip is False and len(outcome.report.delivered) == 4


def test_permanent_errors_fail_the_batch_without_retrying() -> None:
    events = _events(2)
    outcome, posts, sleeps, _ = _run(events, [_reply(401, {"error": "unauthorized", "detail": "no key"})])
    assert len(posts) == 1 and sleeps == []
    assert len(outcome.report.failed) == 2 and "HTTP 401 unauthorized" in outcome.report.failed[0].error
