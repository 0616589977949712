"""A flow's start-up in a fresh process: import, build, and the first micro-batch through every step.

    .venv/bin/python -m tests.support.flow_startup [--load-pandas]

Imports `flows.dataflow`, builds `get_flow` on Bytewax's ``TestingSource``/``TestingSink`` (no broker,
no warehouse: only what the flow pays itself) and runs one micro-batch of 1,000 generated events
through it, after `flows.no_pandas.keep_pandas_out` as the flow's own process does. Prints one JSON
line: the seconds of each stage, whether pandas got imported, the rows out. ``--load-pandas`` leaves
pandas to pyarrow, as before: the baseline of ``benchmarks/flow_startup.py`` and the negative
control of ``tests/flows/test_startup.py``.
"""

import sys
import time

STARTED = time.perf_counter()

import orjson  # noqa: E402


def main(argv: list[str]) -> None:
    imported = time.perf_counter()
    from bytewax.testing import TestingSink, TestingSource, run_main

    from devstack.traffic.generator import EventFactory
    from eventpulse.config.stream import StreamSettings
    from eventpulse.settings import Settings
    from flows.dataflow import FlowSinks, get_flow
    from flows.metrics import PipelineMetrics
    from flows.no_pandas import keep_pandas_out
    from flows.source import SourceBatch

    if "--load-pandas" not in argv:
        keep_pandas_out()  # as ``flows.dataflow:flow`` does in the flow's process
    pandas_after_import = "pandas" in sys.modules
    imported = time.perf_counter()
    now = time.time_ns() // 1_000_000
    messages = list(EventFactory(seed=1).messages(1000, now - 60_000, rate_per_s=1000.0))
    batch = SourceBatch(
        "events", 0, list(range(len(messages))), [m.key for m in messages], [m.value for m in messages], [now] * 1000
    )
    raw: list = []
    sinks = FlowSinks(
        raw_events=TestingSink(raw),
        dead_letters=TestingSink([]),
        window_aggregates=TestingSink([]),
        late_events=TestingSink([]),
    )
    settings = Settings(stream=StreamSettings(seed_from_warehouse=False, dead_letters_to_topic=False))
    flow = get_flow(
        settings, source=TestingSource([batch]), sinks=sinks, partitions=(0,), metrics=PipelineMetrics(None, 3600.0)
    )
    built = time.perf_counter()
    run_main(flow)
    done = time.perf_counter()
    report = {
        "import_s": imported - STARTED,
        "build_s": built - imported,
        "first_batch_s": done - built,
        "pandas_after_import": pandas_after_import,
        "pandas": "pandas" in sys.modules,
        "raw_rows": sum(d.raw_events.num_rows for _, d in raw),
    }
    print(orjson.dumps(report).decode())


if __name__ == "__main__":
    main(sys.argv[1:])
