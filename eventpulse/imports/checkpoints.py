"""Per-file checkpoints: how many rows of a file the broker has acknowledged (and dead letters hold).

One small JSON file per file identity, replaced atomically (write, fsync, rename), so a crash at
any moment leaves the previous checkpoint or the new one, never a torn one. A resumed import
starts at ``rows``; rows after it may have reached the broker before the crash, and are produced
again with the same ids, which the warehouse deduplicates.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Checkpoint:
    url: str
    rows: int  # rows 0 .. rows-1 are acknowledged (or dead-lettered)
    accepted: int
    rejected: int
    complete: bool = False


class CheckpointStore:
    """Checkpoints under ``directory`` (created on first write)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, identity: str) -> Path:
        return self.directory / f"{identity}.json"

    def load(self, identity: str) -> Checkpoint | None:
        try:
            return Checkpoint(**json.loads(self._path(identity).read_text()))
        except FileNotFoundError:
            return None

    def save(self, identity: str, checkpoint: Checkpoint) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(identity)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        with temporary.open("w") as out:
            json.dump(asdict(checkpoint), out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)

    def forget(self, identity: str) -> None:
        self._path(identity).unlink(missing_ok=True)
