"""An `Importer` built from the platform's settings, as the CLI, the gateway and Dagster use it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from eventpulse.events.submitted import SubmittedEventParser
from eventpulse.events.validation import EventValidator
from eventpulse.imports.checkpoints import CheckpointStore
from eventpulse.imports.dead_letters import WarehouseDeadLetters
from eventpulse.imports.runner import Importer, import_producer
from eventpulse.settings import Settings
from eventpulse.warehouse.client import create_client


@contextmanager
def importer(
    settings: Settings,
    tenant: str,
    *,
    checkpoints: bool = True,
    progress: Callable[[int], None] = lambda rows: None,
) -> Iterator[Importer]:
    """An `Importer` for ``tenant``; its producer is flushed and its warehouse client closed afterwards."""
    producer = import_producer(settings.broker)
    dead_letters = WarehouseDeadLetters(lambda: create_client(settings.warehouse, role="writer"))
    store = CheckpointStore(settings.import_checkpoint_dir()) if checkpoints else None
    parser = SubmittedEventParser(EventValidator(settings.events))
    try:
        yield Importer(
            producer,
            settings.broker.events_topic,
            parser,
            tenant,
            settings.imports,
            dead_letters,
            store,
            max_event_bytes=settings.events.max_event_bytes,
            progress=progress,
        )
    finally:
        producer.flush(settings.imports.ack_timeout_s)
        dead_letters.close()
