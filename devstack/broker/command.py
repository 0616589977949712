"""`eventpulse broker serve` / ``python -m devstack.broker``: the local Tansu broker with the platform's topics;
`eventpulse broker store`: its object store."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from devstack.signals import StopFlag, raised_by_signals


@click.command("serve")
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
    from devstack.broker.errors import BrokerError
    from devstack.broker.objectstore import s3_client
    from devstack.broker.recovery import recover
    from devstack.broker.retention import RetentionWorker
    from devstack.broker.tansu import LocalBroker
    from eventpulse.broker.admin import admin_client, ensure_topics, platform_topics
    from eventpulse.settings import Settings

    base = Settings().broker
    updates = {"host": host, "port": port, "partitions": partitions, "storage": storage, "store_port": store_port}
    settings = base.model_copy(update={k: v for k, v in updates.items() if v is not None})
    local = LocalBroker.from_settings(settings, echo=sys.stderr if verbose else None)
    retention = RetentionWorker(settings, local.cluster_id) if settings.storage == "s3" else None
    with raised_by_signals(StopFlag(), (signal.SIGINT, signal.SIGTERM)) as stop:
        try:
            if retention is not None:
                retention.wait_for_store(timeout=30.0)
                if settings.recover_on_start:
                    repaired = recover(s3_client(settings), settings.store_bucket, local.cluster_id)
                    for line in repaired.describe():
                        click.echo(f"recovery: {line}")
            local.start()
            settings = settings.model_copy(update={"bootstrap": local.bootstrap})
            topics = platform_topics(settings)
            admin = admin_client(settings, **local.self_client_options())
            ensure_topics(admin, topics, replication_factor=settings.replication_factor)
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


@click.command("store")
@click.option("--port", type=int, default=None, help="Listen port [default: EVENTPULSE_BROKER_STORE_PORT or 9000].")
@click.option("--directory", type=click.Path(path_type=Path), default=None, help="[default: <data_dir>/broker]")
@click.option("--verbose", "-v", is_flag=True, help="Log every request.")
def store(port: int | None, directory: Path | None, verbose: bool) -> None:
    """Run the durable broker's object store (s3rver on disk) in the foreground."""
    import os

    from devstack.broker.errors import BrokerError
    from devstack.broker.objectstore import object_store_argv
    from eventpulse.settings import Settings

    settings = Settings()
    broker_settings = settings.broker if port is None else settings.broker.model_copy(update={"store_port": port})
    try:
        argv = object_store_argv(broker_settings, directory or settings.broker_store_path(), verbose=verbose)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    os.execv(argv[0], argv)
