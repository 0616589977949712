"""Validating topic messages into columns: the batch validator against the general path.

    .venv/bin/python benchmarks/validation.py [--events 20000] [--batch 1000] [--runs 7] [--padding 0]

The messages are the gateway's wire form from `EventFactory` (its default share of invalid
messages included), received over the last hour. `validate_wire_batch` validates them in batches
of ``--batch``; the baseline, measured in the same run on the same messages, sends every message
through `EventValidator.parse_wire` (the general path, which alone decides rejections) into the
same columns. Each figure is the best of ``--runs`` (the machine may be shared), in µs per message,
and both must accept the same messages.
"""

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from devstack.traffic.generator import EventFactory, TrafficProfile  # noqa: E402
from eventpulse.config.events import EventLimits  # noqa: E402
from eventpulse.events import EventValidator, Rejection  # noqa: E402
from eventpulse.events.wire_batch import WIRE_COLUMNS, validate_wire_batch  # noqa: E402


def general_path(validator: EventValidator, payloads: list[bytes], default_id: Callable[[int], str]) -> list[int]:
    """Every message through `EventValidator.parse_wire`, into columns; the positions accepted."""
    columns: list[list] = [[] for _ in WIRE_COLUMNS]
    index: list[int] = []
    for i, payload in enumerate(payloads):
        result = validator.parse_wire(payload, default_id=default_id(i))
        if not isinstance(result, Rejection):
            for column, value in zip(columns, result.raw_row(0, 0), strict=False):
                column.append(value)
            index.append(i)
    return index


def best_of(runs: int, work: Callable[[], list[int]]) -> tuple[float, list[int]]:
    best, accepted = float("inf"), []
    for _ in range(runs):
        start = time.perf_counter()
        accepted = work()
        best = min(best, time.perf_counter() - start)
    return best, accepted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1_000, help="messages per validate_wire_batch call")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--padding", type=int, default=0, help="TrafficProfile.payload_padding")
    args = parser.parse_args()

    start_ms = int(time.time() * 1000) - 3_600_000
    profile = TrafficProfile(tenants=20, types=10, sources=5, payload_padding=args.padding)
    messages = list(EventFactory(profile, seed=1).messages(args.events, start_ms, rate_per_s=args.events))
    payloads = [m.value for m in messages]
    validator = EventValidator(EventLimits())

    def batched() -> list[int]:
        accepted: list[int] = []
        for first in range(0, len(payloads), args.batch):
            batch = validate_wire_batch(validator, payloads[first : first + args.batch], str)
            accepted += (first + i for i in batch.index)
        return accepted

    general_s, general_accepted = best_of(args.runs, lambda: general_path(validator, payloads, str))
    batch_s, batch_accepted = best_of(args.runs, batched)
    if batch_accepted != general_accepted:
        raise SystemExit("the batch validator and the general path accepted different messages")
    sizes = sorted(len(p) for p in payloads)
    n = len(payloads)
    print(f"{n} messages (median {sizes[n // 2]} bytes), {len(batch_accepted)} valid, batches of {args.batch}")
    print(f"general path (baseline): {general_s / n * 1e6:.2f} µs/message")
    print(f"validate_wire_batch:     {batch_s / n * 1e6:.2f} µs/message")
    print(f"ratio batch/general = {batch_s / general_s:.2f}")


if __name__ == "__main__":
    main()
