"""Which Bytewax process this is, and the warehouse-sink partitions that keep writes local to it.

Bytewax routes every item of a ``FixedPartitionedSink`` to the one worker that owns the item's
partition. With a single sink partition (what the flow had before) a second process shipped every
Arrow batch of raw events across the network to the owner, pickled, so two processes were no
faster than one. Here each process owns a sink partition of its own, ``p<process index>``, and the
flow keys the rows it writes by it: raw events, dead letters, window rows and late rows are
written by the process that made them, and only the window step routes by key (tenant buckets).

Bytewax gives a partition to a worker that *lists* it (`FixedPartitionedSink.list_parts`) and picks
one by ``part_fn(key)`` indexing the sorted set of every partition any worker listed. So:

* process ``k > 0`` lists ``p<k>`` only; process 0 lists ``p0`` and the partitions a recovery store
  may still hold snapshots of with no current owner — ``p<count>`` … ``p<max - 1>`` (a previous
  run with more processes) and ``all`` (the single partition of earlier releases) — because a
  snapshot of a partition nobody lists stops Bytewax on resume;
* the union every run lists is therefore always ``{all, p0 … p<max - 1>}``, and `part_index`
  returns a key's position in it.

The process index and count come from ``python -m bytewax.run``'s own options and environment
(``-i/--process-id``, ``-a/--addresses``, ``BYTEWAX_PROCESS_ID``, ``BYTEWAX_ADDRESSES``, the
StatefulSet pod name, ``BYTEWAX_HOSTFILE_PATH``), read when the flow is built, never at import.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LEGACY_PART = "all"
"""The one sink partition of releases before per-process partitions (kept in old recovery stores)."""


@dataclass(frozen=True, slots=True)
class ProcessPlace:
    """This process's index among ``count`` Bytewax processes, and the sink partitions that follow."""

    index: int = 0
    count: int = 1
    max_processes: int = 64
    _positions: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count <= self.max_processes:
            raise ValueError(
                f"process {self.index} of {self.count} does not fit max_processes={self.max_processes}"
                " (EVENTPULSE_STREAM_MAX_FLOW_PROCESSES)"
            )
        # `part_index` runs once per item routed to a sink: look positions up, do not sort each time.
        object.__setattr__(self, "_positions", {part: n for n, part in enumerate(self.all_parts())})

    @property
    def part(self) -> str:
        """The sink partition this process owns and keys its writes by."""
        return f"p{self.index}"

    def listed_parts(self) -> list[str]:
        """What this process lists: its own partition; process 0 also the ownerless ones."""
        if self.index:
            return [self.part]
        return [LEGACY_PART, self.part, *(f"p{k}" for k in range(self.count, self.max_processes))]

    def all_parts(self) -> list[str]:
        """Every partition some process lists, in Bytewax's (sorted) order."""
        return sorted([LEGACY_PART, *(f"p{k}" for k in range(self.max_processes))])

    def part_index(self, key: str) -> int:
        """``part_fn``: the position of partition ``key`` among `all_parts`."""
        return self._positions[key]


def _argv_options(argv: Sequence[str]) -> tuple[int | None, str | None]:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("-i", "--process-id", type=int)
    parser.add_argument("-a", "--addresses")
    known, _ = parser.parse_known_args(list(argv))
    return known.process_id, known.addresses


def this_process(
    max_processes: int = 64,
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    main_module: str | None = None,
) -> ProcessPlace:
    """The place of the running ``python -m bytewax.run`` process (``index 0 of 1`` otherwise).

    Follows ``bytewax.run``'s own precedence: options, then ``BYTEWAX_PROCESS_ID`` /
    ``BYTEWAX_ADDRESSES``, then the StatefulSet pod name and the host file."""
    env = os.environ if env is None else env
    if main_module is None:
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        main_module = getattr(spec, "name", "") or ""
    if main_module != "bytewax.run":
        return ProcessPlace(0, 1, max_processes)
    index, addresses = _argv_options(sys.argv[1:] if argv is None else argv)
    if index is None and env.get("BYTEWAX_PROCESS_ID"):
        index = int(env["BYTEWAX_PROCESS_ID"])
    if index is None and "BYTEWAX_POD_NAME" in env and "BYTEWAX_STATEFULSET_NAME" in env:
        index = int(env["BYTEWAX_POD_NAME"].replace(env["BYTEWAX_STATEFULSET_NAME"] + "-", ""))
    addresses = addresses or env.get("BYTEWAX_ADDRESSES")
    if addresses is None and index is not None and "BYTEWAX_HOSTFILE_PATH" in env:
        hosts = Path(env["BYTEWAX_HOSTFILE_PATH"]).read_text().split()
        addresses = ";".join(hosts)
    if index is None:
        return ProcessPlace(0, 1, max_processes)
    count = len([a for a in (addresses or "").split(";") if a.strip()]) or 1
    return ProcessPlace(index, count, max_processes)
