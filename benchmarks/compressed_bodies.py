"""What a compressed batch costs the gateway per event: decompression against decoding and validating.

    .venv/bin/python benchmarks/compressed_bodies.py [--events 1000] [--runs 7]

One batch body of ``--events`` synthetic events (the traffic generator's, valid ones only) is compressed
with each coding the gateway takes (gzip, zstd, deflate at their default levels). Measured in the same
run on the same body, best of ``--runs``, in µs per event: `gateway.content_encoding.decompress`, and as
the baseline what the gateway does with every batch anyway (orjson decoding plus `SubmittedEventParser`
validation). Also the bytes a client sends per event and the compression ratio.
"""

import argparse
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import gzip  # noqa: E402

import orjson  # noqa: E402
import zstandard  # noqa: E402

from devstack.traffic.generator import EventFactory  # noqa: E402
from eventpulse.config.events import EventLimits  # noqa: E402
from eventpulse.events import EventValidator  # noqa: E402
from eventpulse.events.submitted import SubmittedEventParser  # noqa: E402
from gateway.content_encoding import decompress  # noqa: E402

CODINGS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "zstd": zstandard.ZstdCompressor().compress,
    "deflate": zlib.compress,
}


def best(runs: int, work: Callable[[], object]) -> float:
    """The fastest of ``runs`` calls, in seconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    factory = EventFactory(seed=7)
    now_ms = time.time_ns() // 1_000_000
    events = [factory.submission(now_ms)[1] for _ in range(args.events)]
    body = orjson.dumps(events)
    checker = SubmittedEventParser(EventValidator(EventLimits()))

    def baseline() -> None:
        checker.parse_all(orjson.loads(body), tenant="tenant-00", received_at_ms=now_ms)

    base = best(args.runs, baseline) / args.events * 1e6
    per_event = len(body) / args.events
    print(f"{args.events} events, {per_event:.0f} B each as JSON; baseline decode + validate: {base:.2f} µs/event")
    print(f"{'coding':8} {'B/event':>8} {'ratio':>6} {'µs/event':>9} {'× baseline':>11}")
    for name, pack in CODINGS.items():
        packed = pack(body)
        assert decompress(packed, name, len(body), 1000) == body
        cost = best(args.runs, lambda packed=packed, name=name: decompress(packed, name, len(body), 1000))
        cost = cost / args.events * 1e6
        print(
            f"{name:8} {len(packed) / args.events:8.1f} {len(body) / len(packed):6.1f} {cost:9.2f} {cost / base:11.2f}"
        )


if __name__ == "__main__":
    main()
