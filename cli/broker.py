"""`eventpulse broker`: run the local broker, create and list topics on any broker."""

from __future__ import annotations

import click

from devstack.broker.command import serve, store

broker = click.Group("broker", help="The Kafka-API broker: a local Tansu server, topics on any broker.")
broker.add_command(serve)
broker.add_command(store)


@broker.group("topics")
def topics() -> None:
    """Create or list topics on any Kafka-API broker."""


_bootstrap = click.option(
    "--bootstrap", default=None, help="Bootstrap servers [default: EVENTPULSE_BROKER_BOOTSTRAP or 127.0.0.1:9092]."
)
_timeout = click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds to wait.")


@topics.command("create")
@click.argument("names", nargs=-1)
@_bootstrap
@click.option("--partitions", type=click.IntRange(min=1), default=None, help="[default: from settings]")
@click.option("--replication-factor", type=click.IntRange(min=1), default=None, help="[default: from settings]")
@_timeout
def create(
    names: tuple[str, ...],
    bootstrap: str | None,
    partitions: int | None,
    replication_factor: int | None,
    timeout: float,
) -> None:
    """Create NAMES (default: the events and dead-letter topics); existing topics are fine."""
    from confluent_kafka import KafkaException

    from eventpulse.broker.admin import admin_client, ensure_topics, platform_topics, topic_partitions
    from eventpulse.settings import Settings

    settings = Settings().broker
    updates = {"bootstrap": bootstrap, "partitions": partitions, "replication_factor": replication_factor}
    settings = settings.model_copy(update={k: v for k, v in updates.items() if v is not None})
    wanted = dict.fromkeys(names, settings.partitions) if names else platform_topics(settings)
    admin = admin_client(settings)
    try:
        created = ensure_topics(admin, wanted, replication_factor=settings.replication_factor, timeout=timeout)
        actual = topic_partitions(admin, timeout)
    except (KafkaException, TimeoutError) as exc:
        raise click.ClickException(f"{settings.bootstrap}: {exc}") from None
    for name, count in wanted.items():
        note = "" if actual[name] == count else f", not {count}: existing topics are left as they are"
        click.echo(f"{name}: {'created' if name in created else 'exists'} ({actual[name]} partitions{note})")


@topics.command("list")
@_bootstrap
@_timeout
def list_topics(bootstrap: str | None, timeout: float) -> None:
    """List topics with their partition counts and retained message counts."""
    from confluent_kafka import KafkaException

    from eventpulse.broker.admin import admin_client, partition_offsets, topic_partitions
    from eventpulse.settings import Settings

    settings = Settings().broker
    if bootstrap:
        settings = settings.model_copy(update={"bootstrap": bootstrap})
    admin = admin_client(settings)
    try:
        found = topic_partitions(admin, timeout)
        rows = []
        for name in sorted(found):
            offsets = partition_offsets(admin, name, timeout)
            rows.append((name, found[name], sum(high - low for low, high in offsets.values())))
    except KafkaException as exc:
        raise click.ClickException(f"{settings.bootstrap}: {exc}") from None
    width = max([len("topic"), *(len(r[0]) for r in rows)])
    click.echo(f"{'topic':<{width}}  partitions  messages")
    for name, count, messages in rows:
        click.echo(f"{name:<{width}}  {count:>10}  {messages:>8}")
