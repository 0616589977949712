"""`eventpulse traffic --target gateway`'s sender: generated traffic in through the gateway."""

import asyncio

from devstack.traffic.gateway_sender import send_batches
from devstack.traffic.generator import EventFactory, TrafficProfile
from tests.gateway.conftest import now_ms, read_topic, wait_for_key


def test_generated_traffic_goes_through_the_gateway(gateway, make_key):
    key = make_key("traffic")
    wait_for_key(gateway, key)
    factory = EventFactory(TrafficProfile(tenants=3, invalid_share=0.05), seed=7)
    messages = list(factory.messages(2000, now_ms(), 10_000))
    batches = [messages[i : i + 700] for i in range(0, len(messages), 700)]
    progress = []
    stats = asyncio.run(send_batches(gateway.url, key, batches, progress=progress.append, max_batch=500))
    valid = [m for m in messages if m.valid]
    assert stats.accepted == len(valid) and stats.rejected == len(messages) - len(valid)
    assert sum(progress) == 2000 and stats.failed_batches == 0
    on_topic = read_topic(gateway.settings.broker.bootstrap, gateway.settings.broker.events_topic, expect=len(valid))
    assert sorted(v["id"] for _, v in on_topic) == sorted(m.event["id"] for m in valid)
    assert {v["tenant"] for _, v in on_topic} == {"traffic"}  # the key's tenant, whatever the generator said
