"""`eventpulse broker`: run the local broker, create and list topics on any broker."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

broker = click.Group("broker", help="The Kafka-API broker: a local Tansu server, topics on any broker.")


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM while the block runs (previous handlers restored after)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@broker.command("serve")
@click.option("--host", default=None, help="Listen address [default: EVENTPULSE_BROKER_HOST or 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Listen port [default: EVENTPULSE_BROKER_PORT or 9092].")
@click.option("--partitions", type=click.IntRange(min=1), default=None, help="Partitions of each topic.")
@click.option(
    "--storage",
    type=click.Choice(["s3", "memory"]),
    default=None,
    help="'s3': the log in the object store (durable); 'memory': lost on restart [default: EVENTPULSE_BROKER_STORAGE].",
)
@click.option("--store-port", type=int, default=None, help="Object store port [default: EVENTPULSE_BROKER_STORE_PORT].")
@click.option("--verbose", "-v", is_flag=True, help="Show the broker's own log lines.")
def serve(
    host: str | None,
    port: int | None,
    partitions: int | None,
    storage: str | None,
    store_port: int | None,
    verbose: bool,
) -> None:
    """Run Tansu and create the platform's topics; Ctrl-C or SIGTERM stops it.

    With s3 storage the object store must be running (`eventpulse broker store`, or `eventpulse up`
    starts it first), and the broker enforces its retention policy every EVENTPULSE_BROKER_RETENTION_CHECK_S.
    """
    from eventpulse.broker.admin import admin_client, ensure_topics, platform_topics
    from eventpulse.broker.errors import BrokerError
    from eventpulse.broker.retention import RetentionWorker
    from eventpulse.broker.tansu import LocalBroker
    from eventpulse.settings import Settings

    base = Settings().broker
    updates = {"host": host, "port": port, "partitions": partitions, "storage": storage, "store_port": store_port}
    settings = base.model_copy(update={k: v for k, v in updates.items() if v is not None})
    local = LocalBroker.from_settings(settings, echo=click.get_text_stream("stderr") if verbose else None)
    retention = RetentionWorker(settings, local.cluster_id) if settings.storage == "s3" else None
    with _stop_on_signals() as stop:
        try:
            if retention is not None:
                retention.wait_for_store(timeout=30.0)
            local.start()
            settings = settings.model_copy(update={"bootstrap": local.bootstrap})
            topics = platform_topics(settings)
            ensure_topics(admin_client(settings), topics, replication_factor=settings.replication_factor)
        except BrokerError as exc:
            local.stop()
            raise click.ClickException(str(exc)) from None
        except BaseException:
            local.stop()
            raise
        try:
            listed = ", ".join(f"{name}×{count}" for name, count in topics.items())
            where = f"s3, {settings.store_endpoint()}/{settings.store_bucket}" if retention else "memory"
            click.echo(f"broker ready on {local.bootstrap} (storage: {where}; topics: {listed})")
            if retention is not None:
                retention.start()
            while not stop.wait(0.2):
                if not local.running:
                    raise click.ClickException(f"the broker exited unexpectedly\n{local.output_tail()}")
        finally:
            if retention is not None:
                retention.stop()
            local.stop()
    click.echo("broker stopped")


@broker.command("store")
@click.option("--port", type=int, default=None, help="Listen port [default: EVENTPULSE_BROKER_STORE_PORT or 9000].")
@click.option("--directory", type=click.Path(path_type=Path), default=None, help="[default: <data_dir>/broker]")
@click.option("--verbose", "-v", is_flag=True, help="Log every request.")
def store(port: int | None, directory: Path | None, verbose: bool) -> None:
    """Run the durable broker's object store (s3rver on disk) in the foreground."""
    import os

    from eventpulse.broker.errors import BrokerError
    from eventpulse.broker.objectstore import object_store_argv
    from eventpulse.settings import Settings

    settings = Settings()
    broker_settings = settings.broker if port is None else settings.broker.model_copy(update={"store_port": port})
    try:
        argv = object_store_argv(broker_settings, directory or settings.broker_store_path(), verbose=verbose)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    os.execv(argv[0], argv)


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
