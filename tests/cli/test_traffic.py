"""`eventpulse traffic` against the real broker, and through a real gateway with a created key."""

import re

from click.testing import CliRunner

from cli.main import cli
from devstack.traffic.generator import EventFactory, TrafficProfile
from tests.gateway.conftest import read_topic


def _env(broker, warehouse) -> dict[str, str]:
    return {
        "EVENTPULSE_BROKER_BOOTSTRAP": broker.bootstrap,
        "EVENTPULSE_BROKER_EVENTS_TOPIC": broker.events_topic,
        "EVENTPULSE_WAREHOUSE_URL": warehouse.url,
        "EVENTPULSE_WAREHOUSE_DATABASE": warehouse.database,
    }


def test_traffic_to_the_topic_follows_the_rate(broker_settings, warehouse) -> None:
    result = CliRunner().invoke(
        cli,
        ["traffic", "--rate", "1000", "--duration", "2", "--invalid-share", "0"],
        env=_env(broker_settings, warehouse),
    )
    assert result.exit_code == 0, result.output
    on_topic = read_topic(broker_settings.bootstrap, broker_settings.events_topic, expect=2000)
    assert 1800 <= len(on_topic) <= 2100
    assert len({v["tenant"] for _, v in on_topic}) > 5


def test_traffic_through_the_gateway_with_a_created_key(gateway, warehouse) -> None:
    """Every event the gateway acknowledged is on the topic, once, under the key's tenant: exactly the
    first ``sent`` events the seeded generator makes (their ids do not depend on how they were paced)."""
    env = _env(gateway.settings.broker, warehouse)
    args = ["traffic", "--target", "gateway", "--gateway-url", gateway.url, "--create-key", "demo"]
    result = CliRunner().invoke(cli, [*args, "--rate", "500", "--duration", "3", "--invalid-share", "0"], env=env)
    assert result.exit_code == 0, result.output
    assert "created API key" in result.output
    summary = re.search(
        r"(\d+) sent, (\d+) accepted, (\d+) rejected, (\d+) duplicates, (\d+) batches failed", result.output
    )
    assert summary, result.output
    sent, accepted, rejected, duplicates, failed = map(int, summary.groups())
    assert (accepted, rejected, duplicates, failed) == (sent, 0, 0, 0) and sent >= 1000  # ~1,500 at 500/s for 3 s
    broker = gateway.settings.broker
    on_topic = read_topic(broker.bootstrap, broker.events_topic, expect=accepted, timeout=60)
    ids = [v["id"] for _, v in on_topic]
    generated = EventFactory(TrafficProfile(tenants=20, invalid_share=0.0), seed=0).messages(sent, 0)
    assert sorted(ids) == sorted(m.event["id"] for m in generated)  # each acknowledged event once, nothing else
    assert {v["tenant"] for _, v in on_topic} == {"demo"}
