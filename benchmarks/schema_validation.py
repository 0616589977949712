"""The cost per event of checking ``data`` against registered schemas, against no schema in the same run.

    .venv/bin/python benchmarks/schema_validation.py [--events 20000] [--batch 1000] [--runs 7]

The messages are `EventFactory`'s (20 tenants, 10 types; its share of invalid messages included). With
schemas, every (tenant, type) of the traffic has one (draft 2020-12: user_id, action from an enum,
latency_ms, a metadata object with a session string; additional properties allowed), compiled by
jsonschema-rs, and every valid message passes it. Two paths, each without and with the schemas:

* the dataflow's `validate_wire_batch` in batches of ``--batch`` (with schemas every message of a
  registered type leaves the fast path for `EventValidator.parse_wire`, which checks the schema);
* the gateway's `SubmittedEventParser.parse_all` over the decoded bodies (the exact path, then the schema).

Each figure is the best of ``--runs`` rounds (the two variants take turns, after a warm-up round; the
cyclic garbage collector off while timing, as timeit does) in µs per
message; the ratio is with/without in the same run.
Both variants of a path must accept the same messages (the schemas refuse none of them).
"""

import argparse
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from devstack.traffic.generator import EventFactory, TrafficProfile  # noqa: E402
from eventpulse.config.events import EventLimits  # noqa: E402
from eventpulse.events import EventValidator, Rejection  # noqa: E402
from eventpulse.events.submitted import SubmittedEventParser  # noqa: E402
from eventpulse.events.wire_batch import validate_wire_batch  # noqa: E402
from eventpulse.schemas.registry import SchemaRegistry  # noqa: E402
from eventpulse.schemas.store import SchemaVersion, fingerprint  # noqa: E402

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "user_id": {"type": ["string", "integer"]},
        "action": {"enum": ["view", "click", "scroll", "share", "submit", "hover"]},
        "latency_ms": {"type": ["number", "null"], "minimum": 0},
        "metadata": {"type": "object", "properties": {"session": {"type": "string"}}},
    },
    "required": ["user_id"],
}


def _decoded(payload: bytes) -> object:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None  # one of the generator's malformed messages


def best_of_each(runs: int, *works: Callable[[], list[int]]) -> list[tuple[float, list[int]]]:
    """The best time of each of ``works`` over ``runs`` rounds, taking turns (a drift of the machine's speed
    hits both alike), with what each accepted; one untimed round first warms every path up."""
    best = [(float("inf"), work()) for work in works]
    for _ in range(runs):
        for k, work in enumerate(works):
            gc.collect()
            gc.disable()  # as timeit does: a collection triggered by the other variant's garbage is not this one's
            try:
                start = time.perf_counter()
                accepted = work()
                elapsed = time.perf_counter() - start
            finally:
                gc.enable()
            best[k] = (min(best[k][0], elapsed), accepted)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    start_ms = int(time.time() * 1000) - 3_600_000
    profile = TrafficProfile(tenants=20, types=10, sources=5)
    messages = list(EventFactory(profile, seed=1).messages(args.events, start_ms, rate_per_s=args.events))
    payloads = [m.value for m in messages]
    docs = [_decoded(p) for p in payloads]
    subjects = {(d.get("tenant"), d.get("type")) for d in docs if isinstance(d, dict)}
    registry = SchemaRegistry.of(
        SchemaVersion(t, kind, 1, SCHEMA, fingerprint(SCHEMA))
        for t, kind in subjects
        if isinstance(t, str) and isinstance(kind, str)
    )
    limits = EventLimits()
    plain, checked = EventValidator(limits), EventValidator(limits, registry)

    def wire(validator: EventValidator) -> Callable[[], list[int]]:
        def run() -> list[int]:
            accepted: list[int] = []
            for first in range(0, len(payloads), args.batch):
                batch = validate_wire_batch(validator, payloads[first : first + args.batch], str)
                accepted += (first + i for i in batch.index)
            return accepted

        return run

    tenant_of = [d.get("tenant") if isinstance(d, dict) and isinstance(d.get("tenant"), str) else "t" for d in docs]
    by_tenant: dict[str, list[int]] = {}
    for i, tenant in enumerate(tenant_of):
        by_tenant.setdefault(tenant, []).append(i)
    received = max(d["received_at"] for d in docs if isinstance(d, dict) and "received_at" in d)

    def gateway(validator: EventValidator) -> Callable[[], list[int]]:
        parse = SubmittedEventParser(validator, new_id=lambda: "id").parse_all

        def run() -> list[int]:
            accepted: list[int] = []
            for tenant, positions in by_tenant.items():
                results = parse([docs[i] for i in positions], tenant=tenant, received_at_ms=received)
                accepted += (i for i, r in zip(positions, results, strict=True) if not isinstance(r, Rejection))
            return sorted(accepted)

        return run

    n = len(payloads)
    print(f"{n} messages, {len(subjects)} subjects with a schema, batches of {args.batch}")
    print(f"{'path':34} {'no schema µs/msg':>17} {'schema µs/msg':>14} {'ratio':>6} {'µs/msg added':>13}")
    for name, make in (("dataflow (validate_wire_batch)", wire), ("gateway (SubmittedEventParser)", gateway)):
        (base_s, base_ok), (with_s, with_ok) = best_of_each(args.runs, make(plain), make(checked))
        if base_ok != with_ok:
            raise SystemExit(f"{name}: the schemas refused valid messages ({len(base_ok)} vs {len(with_ok)})")
        base, cost = base_s / n * 1e6, with_s / n * 1e6
        print(f"{name:34} {base:17.2f} {cost:14.2f} {with_s / base_s:6.2f} {cost - base:13.2f}")


if __name__ == "__main__":
    main()
