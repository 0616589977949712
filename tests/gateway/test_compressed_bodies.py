"""Compressed request bodies through a real gateway, broker, dataflow and warehouse (issue 17, item 2)."""

import gzip
import zlib
from collections import Counter

import orjson
import pytest
import zstandard

from eventpulse.warehouse.client import create_client
from tests.gateway.conftest import event, read_topic, wait_for_key
from tests.gateway.test_edges import dead_letters
from tests.support.pipeline import run_flow_until_drained

pytestmark = pytest.mark.integration

COMPRESS = {
    "gzip": gzip.compress,
    "zstd": zstandard.ZstdCompressor().compress,
    "deflate": zlib.compress,
}


def _ndjson(prefix: str, count: int) -> bytes:
    return b"".join(orjson.dumps(event(f"{prefix}-{i}")) + b"\n" for i in range(count))


def test_every_coding_is_accepted_on_the_single_and_batch_routes(gateway, make_key):
    key = make_key("acme")
    wait_for_key(gateway, key)
    sent = []
    with gateway.client(key) as http:
        for coding, pack in COMPRESS.items():
            one = event(f"{coding}-single")
            batch = [event(f"{coding}-batch-{i}") for i in range(3)]
            ndjson = b"\n".join(orjson.dumps(event(f"{coding}-nd-{i}")) for i in range(2))
            headers = {"Content-Type": "application/json", "Content-Encoding": coding}
            single = http.post("/api/events", content=pack(orjson.dumps(one)), headers=headers)
            many = http.post("/api/events/batch", content=pack(orjson.dumps(batch)), headers=headers)
            lines = http.post(
                "/api/events/batch",
                content=pack(ndjson),
                headers={"Content-Type": "application/x-ndjson", "Content-Encoding": coding},
            )
            assert single.status_code == 202, single.text
            assert many.status_code == 202 and many.json()["accepted"] == 3, many.text
            assert lines.status_code == 202 and lines.json()["accepted"] == 2, lines.text
            sent += [one["id"], *(e["id"] for e in batch), f"{coding}-nd-0", f"{coding}-nd-1"]
        # Several gzip members (`cat a.gz b.gz`) and several zstd frames in one body: every one is read.
        members = gzip.compress(_ndjson("gz-m1", 3)) + gzip.compress(_ndjson("gz-m2", 4))
        frames = zstandard.ZstdCompressor().compress(_ndjson("zs-f1", 3)) + COMPRESS["zstd"](_ndjson("zs-f2", 4))
        for coding, body, prefixes in (("gzip", members, ("gz-m1", "gz-m2")), ("zstd", frames, ("zs-f1", "zs-f2"))):
            headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": coding}
            answer = http.post("/api/events/batch", content=body, headers=headers)
            assert answer.status_code == 202 and answer.json()["accepted"] == 7, answer.text
            sent += [f"{prefixes[0]}-{i}" for i in range(3)] + [f"{prefixes[1]}-{i}" for i in range(4)]
    # Control: a decoder that stops after the first member (one zlib stream) would have lost 4 of the 7.
    assert zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(members).count(b"\n") == 3
    broker = gateway.settings.broker
    messages = read_topic(broker.bootstrap, broker.events_topic, expect=len(sent))
    assert sorted(v["id"] for _, v in messages) == sorted(sent)  # each once on the topic
    run_flow_until_drained(broker, gateway.settings.warehouse)
    client = create_client(gateway.settings.warehouse, role="admin")
    rows = client.query("SELECT id, count() FROM events FINAL WHERE tenant = 'acme' GROUP BY id").result_rows
    client.close()
    assert Counter(dict(rows)) == Counter(dict.fromkeys(sent, 1))  # and each once in the warehouse


def test_a_bomb_is_refused_with_413_and_dead_lettered(gateway, make_key, warehouse):
    key = make_key("acme")
    wait_for_key(gateway, key)
    batch_limit = gateway.settings.gateway.max_batch_bytes
    filler = orjson.dumps([event(f"e-{i}") for i in range(10)])
    bomb = gzip.compress(filler + b" " * (4 * batch_limit))  # valid JSON once whole: only the bounds stop it
    single_bomb = zstandard.ZstdCompressor().compress(b" " * (10 * gateway.settings.events.max_event_bytes))
    with gateway.client(key) as http:
        batch = http.post(
            "/api/events/batch", content=bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
        )
        single = http.post(
            "/api/events", content=single_bomb, headers={"Content-Type": "application/json", "Content-Encoding": "zstd"}
        )
        corrupt = http.post(
            "/api/events", content=gzip.compress(orjson.dumps(event("c")))[:-8], headers={"Content-Encoding": "gzip"}
        )
        unknown = http.post("/api/events", content=b"{}", headers={"Content-Encoding": "br"})
        metrics = http.get("/api/metrics").json()
    assert batch.status_code == 413 and batch.json()["error"] == "payload_too_large"
    assert single.status_code == 413 and "decompresses to more than" in single.json()["detail"]
    assert corrupt.status_code == 400 and corrupt.json()["error"] == "malformed_body"
    assert unknown.status_code == 415 and unknown.headers["accept-encoding"] == "gzip, zstd, deflate"
    assert metrics["events_accepted"] == 0  # nothing of a refused body was produced
    rows = dead_letters(warehouse, 3)
    reasons = ["body_too_large_decompressed", "body_too_large_decompressed", "malformed_encoding"]
    assert sorted(r[0] for r in rows) == reasons
    assert all("decompress" in r[2] for r in rows)
    assert any(r[3].startswith('[{"') for r in rows)  # the bomb's dead letter keeps what it decompressed to
