"""`eventpulse broker serve` / ``python -m devstack.broker``: the local Tansu broker with the platform's topics."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import click


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


@click.command("serve")
@click.option("--host", default=None, help="Listen address [default: EVENTPULSE_BROKER_HOST or 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Listen port [default: EVENTPULSE_BROKER_PORT or 9092].")
@click.option("--partitions", type=click.IntRange(min=1), default=None, help="Partitions of each topic.")
@click.option("--verbose", "-v", is_flag=True, help="Show the broker's own log lines.")
def serve(host: str | None, port: int | None, partitions: int | None, verbose: bool) -> None:
    """Run Tansu (in memory) and create the platform's topics; Ctrl-C or SIGTERM stops it."""
    from devstack.broker.errors import BrokerError
    from devstack.broker.tansu import LocalBroker
    from eventpulse.broker.admin import admin_client, ensure_topics, platform_topics
    from eventpulse.settings import Settings

    base = Settings().broker
    updates = {"host": host, "port": port, "partitions": partitions}
    settings = base.model_copy(update={k: v for k, v in updates.items() if v is not None})
    local = LocalBroker.from_settings(settings, echo=sys.stderr if verbose else None)
    with _stop_on_signals() as stop:
        try:
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
            click.echo(f"broker ready on {local.bootstrap} (topics: {listed})")
            while not stop.wait(0.2):
                if not local.running:
                    raise click.ClickException(f"the broker exited unexpectedly\n{local.output_tail()}")
        finally:
            local.stop()
    click.echo("broker stopped")
