"""Bulk import from Parquet against a bare producer sending the same messages, in the same run.

    .venv/bin/python benchmarks/bulk_import.py [--rows 300000] [--rounds 3] [--row-path]

For each shape (flat or nested ``data``, 1,000 or 200,000 distinct users; the tables of
`devstack.traffic.import_files`) a Parquet file of ``--rows`` valid events is written, and a fresh
Tansu broker (memory storage, 4 partitions) started. Each round then runs, one after the other:

* **bare**: a librdkafka producer with the import's configuration producing the file's messages
  (already encoded, the very bytes the import sends) and waiting for every ack: the ceiling;
* **import**: `eventpulse.imports.runner.Importer.import_file` on the file: read the Parquet,
  validate and encode column by column (`eventpulse.imports.columnar`), produce, wait for acks,
  write checkpoints;
* with ``--row-path``, also the import with ``EVENTPULSE_IMPORT_COLUMNAR=false`` (every row as an
  object through the gateway's parser), in the first round only.

Printed: events/s of each (wall time) and import/bare per round; the median and the range over
rounds. The broker runs on the same two cores and is part of every figure.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import pyarrow.parquet as pq  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from devstack.ports import free_port, wait_for_port  # noqa: E402
from devstack.traffic.import_files import event_table  # noqa: E402
from eventpulse.config.broker import BrokerSettings  # noqa: E402
from eventpulse.config.events import EventLimits  # noqa: E402
from eventpulse.config.imports import ImportSettings  # noqa: E402
from eventpulse.events.submitted import SubmittedEventParser  # noqa: E402
from eventpulse.events.validation import EventValidator  # noqa: E402
from eventpulse.imports.checkpoints import CheckpointStore  # noqa: E402
from eventpulse.imports.files import filesystem_of, list_files  # noqa: E402
from eventpulse.imports.runner import Importer, import_producer  # noqa: E402


class _NoDeadLetters:
    """The benchmark's events are all valid: a dead letter would be a bug."""

    def write(self, identity: str, tenant: str, rejected: list, received_ms: int) -> None:
        if rejected:
            raise AssertionError(f"{len(rejected)} generated events refused: {rejected[0]}")


SHAPES = (("flat", 1_000), ("flat", 200_000), ("nested", 1_000), ("nested", 200_000))
TENANT = "bench"


def _topic(bootstrap: str, name: str) -> str:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, 4, 1)]).values():
        future.result(30)
    return name


def _importer(broker: BrokerSettings, topic: str, work: Path, *, columnar: bool) -> Importer:
    limits = EventLimits()
    return Importer(
        import_producer(broker),
        topic,
        SubmittedEventParser(EventValidator(limits)),
        TENANT,
        ImportSettings(columnar=columnar),
        _NoDeadLetters(),
        CheckpointStore(work / f"cp-{time.monotonic_ns()}"),
        max_event_bytes=limits.max_event_bytes,
    )


def _bare(broker: BrokerSettings, topic: str, messages: list[tuple[bytes, bytes]]) -> float:
    producer = import_producer(broker)
    started = time.perf_counter()
    produce, poll = producer.produce, producer.poll
    for key, value in messages:
        while True:
            try:
                produce(topic, value, key)
                break
            except BufferError:
                poll(0.05)
    if producer.flush(120):
        raise RuntimeError("the bare producer's messages were not all acknowledged")
    return time.perf_counter() - started


def _run_shape(shape: str, users: int, args: argparse.Namespace, work: Path) -> list[str]:
    now = time.time_ns() // 1_000_000
    path = work / f"{shape}-{users}.parquet"
    pq.write_table(event_table(args.rows, now, shape=shape, users=users), path, row_group_size=100_000)  # type: ignore[arg-type]
    file = list_files(*filesystem_of(str(path)), str(path))[0]
    port = free_port()
    argv = [sys.executable, "-m", "devstack.broker", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--partitions", "4", "--storage", "memory"]
    with (work / f"broker-{port}.log").open("ab") as log:
        broker_proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)
    try:
        wait_for_port("127.0.0.1", port, 60)
        time.sleep(1.0)
        broker = BrokerSettings(bootstrap=f"127.0.0.1:{port}")
        reference = _importer(broker, "unused", work, columnar=True)
        encoded = reference.encode(next(iter(_chunks(file, args.rows))), file.identity(), now)
        messages = list(zip(encoded.keys, encoded.values, strict=True))
        assert len(messages) == args.rows, "every generated event is valid"
        rates: dict[str, list[float]] = {"bare": [], "import": [], "rows": []}
        for round_ in range(args.rounds):
            rates["bare"].append(args.rows / _bare(broker, _topic(broker.bootstrap, f"bare-{round_}"), messages))
            importer = _importer(broker, _topic(broker.bootstrap, f"import-{round_}"), work, columnar=True)
            started = time.perf_counter()
            result = importer.import_file(file)
            rates["import"].append(result.accepted / (time.perf_counter() - started))
            if args.row_path and round_ == 0:
                importer = _importer(broker, _topic(broker.bootstrap, "rows"), work, columnar=False)
                started = time.perf_counter()
                result = importer.import_file(file)
                rates["rows"].append(result.accepted / (time.perf_counter() - started))
    finally:
        broker_proc.kill()
        broker_proc.wait()
    ratios = [i / b for i, b in zip(rates["import"], rates["bare"], strict=True)]
    line = (
        f"| {shape} | {users:,} | {_spread(rates['bare'])} | {_spread(rates['import'])} | {_spread(ratios, '{:.2f}')} |"
    )
    if rates["rows"]:
        line += f" {rates['rows'][0]:,.0f} ({rates['rows'][0] / rates['bare'][0]:.2f}) |"
    return [line]


def _chunks(file, rows: int):  # type: ignore[no-untyped-def]
    from eventpulse.imports.reading import read_chunks

    return read_chunks(file, rows)


def _spread(values: list[float], form: str = "{:,.0f}") -> str:
    return f"{form.format(statistics.median(values))} ({form.format(min(values))}–{form.format(max(values))})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--row-path", action="store_true", help="also time the general (row by row) path once")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="eventpulse-bench-import-"))
    header = "| shape | users | bare producer ev/s | import ev/s | import / bare |"
    if args.row_path:
        header += " row path ev/s (/ bare) |"
    print(f"{args.rows:,} events per file, {args.rounds} rounds, median (range)")
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for shape, users in SHAPES:
        for line in _run_shape(shape, users, args, work):
            print(line, flush=True)


if __name__ == "__main__":
    main()
