"""What a compressed batch costs the gateway per event: decompression against decoding and validating.

    .venv/bin/python benchmarks/compressed_bodies.py [--events 1000] [--runs 7]

One batch body of ``--events`` synthetic events (the traffic generator's, valid ones only) is compressed
with each coding the gateway takes (gzip, zstd, deflate at their default levels). Measured in the same
run on the same body, best of ``--runs``, in µs of CPU per event (one thread: wall time is CPU time):
`gateway.content_encoding.decompress` alone, and the whole body path of each coding (decompress, orjson
decoding, `SubmittedEventParser` validation) against the identity body's (decoding and validation
only, the baseline). Also the bytes a client sends per event and the compression ratio.
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


def interleaved(runs: int, work: dict[str, Callable[[], object]]) -> dict[str, float]:
    """The least CPU time (seconds, this process's) of each of ``work`` over ``runs`` rounds, every
    round running each once in turn: load from other processes slows all alike, not one variant."""
    least = dict.fromkeys(work, float("inf"))
    for _ in range(runs):
        for name, job in work.items():
            start = time.process_time()
            job()
            least[name] = min(least[name], time.process_time() - start)
    return least


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    factory = EventFactory(seed=7)
    now_ms = time.time_ns() // 1_000_000
    events = [factory.submission(now_ms)[1] for _ in range(args.events)]
    body = orjson.dumps(events)
    checker = SubmittedEventParser(EventValidator(EventLimits()))

    def identity() -> None:
        checker.parse_all(orjson.loads(body), tenant="tenant-00", received_at_ms=now_ms)

    def whole(packed: bytes, name: str) -> Callable[[], None]:
        def run() -> None:
            decoded = orjson.loads(decompress(packed, name, len(body), 1000))
            checker.parse_all(decoded, tenant="tenant-00", received_at_ms=now_ms)

        return run

    packed = {name: pack(body) for name, pack in CODINGS.items()}
    work: dict[str, Callable[[], object]] = {"identity": identity}
    for name, data in packed.items():
        assert decompress(data, name, len(body), 1000) == body
        work[name] = whole(data, name)
        work[f"{name}:decompress"] = lambda data=data, name=name: decompress(data, name, len(body), 1000)
    cpu = {name: seconds / args.events * 1e6 for name, seconds in interleaved(args.runs, work).items()}
    base = cpu["identity"]
    print(f"{args.events} events, {len(body) / args.events:.0f} B each as JSON; CPU µs per event, least of {args.runs}")
    print(f"{'coding':8} {'B/event':>8} {'ratio':>6} {'decompress':>11} {'whole path':>11} {'× identity':>11}")
    print(f"{'identity':8} {len(body) / args.events:8.1f} {1:6.1f} {0:11.2f} {base:11.2f} {1:11.2f}")
    for name, data in packed.items():
        ratio = len(body) / len(data)
        path = cpu[name]
        print(
            f"{name:8} {len(data) / args.events:8.1f} {ratio:6.1f} {cpu[f'{name}:decompress']:11.2f}"
            f" {path:11.2f} {path / base:11.2f}"
        )


if __name__ == "__main__":
    main()
