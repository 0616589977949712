"""`eventpulse traffic` against the real broker, and through a real gateway with a created key."""

from click.testing import CliRunner

from cli.main import cli
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
    env = _env(gateway.settings.broker, warehouse)
    args = ["traffic", "--target", "gateway", "--gateway-url", gateway.url, "--create-key", "demo"]
    result = CliRunner().invoke(cli, [*args, "--rate", "500", "--duration", "3", "--invalid-share", "0"], env=env)
    assert result.exit_code == 0, result.output
    assert "created API key" in result.output
    on_topic = read_topic(gateway.settings.broker.bootstrap, gateway.settings.broker.events_topic, idle_s=3)
    assert len(on_topic) > 500
    assert {v["tenant"] for _, v in on_topic} == {"demo"}
