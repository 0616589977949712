"""Refused rows of an import go to the warehouse's ``dead_letters`` table, stage ``import``.

Written synchronously, before the file's checkpoint passes them, with the deterministic id
``import:<file identity>:<row>``: a resumed import rewrites the same rows (the table is a
ReplacingMergeTree), never adds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from clickhouse_connect.driver.client import Client

from eventpulse.events.model import DEAD_LETTER_COLUMNS
from eventpulse.events.rejections import Rejection

STAGE = "import"


class DeadLetterSink(Protocol):
    def write(self, identity: str, tenant: str, rejected: list[tuple[int, Rejection, str]], received_ms: int) -> None:
        """Record ``rejected`` (row, why, what the row held) durably."""


class WarehouseDeadLetters:
    """The `DeadLetterSink` of the warehouse (one client, opened on first use)."""

    def __init__(self, client_factory: Callable[[], Client]) -> None:
        self._factory = client_factory
        self._client: Client | None = None
        self.written = 0

    def write(self, identity: str, tenant: str, rejected: list[tuple[int, Rejection, str]], received_ms: int) -> None:
        if not rejected:
            return
        if self._client is None:
            self._client = self._factory()
        at = datetime.fromtimestamp(received_ms / 1000, UTC)
        rows = [
            [
                f"{STAGE}:{identity}:{row}",
                tenant,
                STAGE,
                why.reason.value,
                why.field or "",
                why.detail[:2000],
                payload,
                "",
                -1,
                -1,
                at,
            ]
            for row, why, payload in rejected
        ]
        self._client.insert("dead_letters", rows, column_names=list(DEAD_LETTER_COLUMNS))
        self.written += len(rows)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
