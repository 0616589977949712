"""The registry's snapshot in a gateway process, reloaded in the background like the API keys.

`SchemaMirror` reads the latest version of every subject every ``EVENTPULSE_SCHEMAS_REFRESH_S``
into the `SchemaRegistry` the event validator reads (`eventpulse.schemas.registry`). A failed reload
keeps the previous snapshot (events are still checked against the schemas last read).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from clickhouse_connect.driver.client import Client

from eventpulse.schemas.registry import SchemaRegistry, compile_snapshot
from eventpulse.schemas.store import latest_versions
from gateway.periodic import WarehouseMirror


class SchemaMirror(WarehouseMirror):
    """Keeps ``registry.snapshot`` to the warehouse's latest versions."""

    def __init__(
        self,
        registry: SchemaRegistry,
        client_factory: Callable[[], Client],
        refresh_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__("schema-registry", client_factory, refresh_s, float("inf"), clock)
        self.registry = registry

    def reload(self) -> int:
        rows = self._read(latest_versions)
        self.registry.snapshot = compile_snapshot(rows, self.registry.snapshot)
        self._loaded()
        return len(self.registry.snapshot.schemas)
