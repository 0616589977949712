"""`eventpulse traffic`: synthetic traffic to the events topic or through the gateway."""

import asyncio
import contextlib
import time

import click
from tqdm import tqdm

from devstack.traffic.generator import EventFactory, TrafficProfile
from devstack.traffic.pacing import paced_batches
from eventpulse.settings import Settings


@click.command("traffic")
@click.option("--rate", type=float, default=1000.0, show_default=True, help="Events per second.")
@click.option("--duration", type=float, default=None, help="Seconds to run (default: until Ctrl-C).")
@click.option("--target", type=click.Choice(["broker", "gateway"]), default="broker", show_default=True)
@click.option("--gateway-url", default=None, help="Gateway base URL (default from settings).")
@click.option("--api-key", default=None, envvar="EVENTPULSE_TRAFFIC_API_KEY", help="API key for --target gateway.")
@click.option(
    "--create-key",
    "key_tenant",
    default=None,
    help="With --target gateway: create an API key for this tenant and send as it (demo stacks).",
)
@click.option("--tenants", type=int, default=20, show_default=True)
@click.option("--invalid-share", type=float, default=0.01, show_default=True, help="Share of invalid events.")
@click.option("--seed", type=int, default=0, show_default=True)
def traffic(
    rate: float,
    duration: float | None,
    target: str,
    gateway_url: str | None,
    api_key: str | None,
    key_tenant: str | None,
    tenants: int,
    invalid_share: float,
    seed: int,
) -> None:
    """Generate realistic events (tenants, types, sources, users, latencies, errors, some invalid)."""
    settings = Settings()
    factory = EventFactory(TrafficProfile(tenants=tenants, invalid_share=invalid_share), seed=seed)
    batches = paced_batches(factory, rate, duration)
    total = int(rate * duration) if duration else None
    click.echo(f"traffic: {rate:.0f} events/s to {target} ({tenants} tenants, {invalid_share:.1%} invalid)")
    with tqdm(total=total, unit="ev", unit_scale=True, disable=None, mininterval=2.0) as bar:
        if target == "broker":
            _to_broker(settings, batches, bar)
        else:
            if key_tenant and not api_key:
                api_key = _create_key(settings, key_tenant)
            if not api_key:
                raise click.UsageError("--target gateway needs --api-key, EVENTPULSE_TRAFFIC_API_KEY or --create-key")
            url = gateway_url or f"http://{settings.gateway.host}:{settings.gateway.port}"
            _to_gateway(url, api_key, batches, bar)


def _create_key(settings: Settings, tenant: str) -> str:
    from eventpulse.api_keys import create_key
    from eventpulse.audit import Actor, AuditWriter
    from eventpulse.warehouse.client import create_client

    client = create_client(settings.warehouse, role="admin")
    try:
        audit = AuditWriter(client, Actor.local_cli("eventpulse traffic"))
        row, key = create_key(client, tenant, description="eventpulse traffic --create-key", audit=audit)
    finally:
        client.close()
    click.echo(f"traffic: created API key {row.key_id} for tenant {tenant!r}")
    # Gateways reload keys every key_refresh_s (at most 2 s): wait until they all can know it.
    time.sleep(2 * settings.gateway.key_refresh_s + 0.5)
    return key


def _to_broker(settings: Settings, batches, bar: tqdm) -> None:
    from confluent_kafka import Producer

    from devstack.traffic.broker_sender import send_to_topic
    from eventpulse.broker.admin import producer_config

    producer = Producer(producer_config(settings.broker))
    try:
        for batch in batches:
            bar.update(send_to_topic(producer, settings.broker.events_topic, batch))
    except KeyboardInterrupt:
        pass
    finally:
        producer.flush(10)


def _to_gateway(url: str, api_key: str, batches, bar: tqdm) -> None:
    from devstack.traffic.gateway_sender import send_batches

    sent = 0

    def progress(n: int) -> None:
        nonlocal sent
        sent += n
        bar.update(n)

    with contextlib.suppress(KeyboardInterrupt):
        stats = asyncio.run(send_batches(url, api_key, batches, progress=progress))
        # What the gateway acknowledged, so a run can be checked against the topic (every accepted event on it).
        click.echo(
            f"traffic: {sent} sent, {stats.accepted} accepted, {stats.rejected} rejected, "
            f"{stats.duplicates} duplicates, {stats.failed_batches} batches failed"
        )
