"""Pipeline metrics of one flow process: counted by the operators, written to the
``pipeline_metrics`` table every ``metrics_interval_s`` and served in Prometheus' text format.

* counters (``events_in``, ``events_out``, ``dead_letters``, ``late_events``, ``late_updates``,
  ``window_rows``) are written as per-second rates over the last interval;
* gauges (``consumer_lag`` per partition, ``watermark_delay_ms``) as their last value;
* samples (``batch_size``, ``processing_latency_ms`` = consumed → window state updated,
  ``freshness_event_ms`` = event timestamp → row visible in the warehouse, ``freshness_broker_ms``
  = broker timestamp → row visible) as ``_p50``/``_p95``/``_p99`` over the interval.

Nothing starts at import: `PipelineMetrics.start` is called by the first sink that is built.
"""

import atexit
import logging
import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
from clickhouse_connect.driver.client import Client

from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.client import create_client

log = logging.getLogger(__name__)

_MAX_SAMPLES = 200_000
PERCENTILES = (50, 95, 99)


class PipelineMetrics:
    """Thread-safe counters, gauges and samples shared by the workers of one process."""

    def __init__(
        self, warehouse: WarehouseSettings | None, interval_s: float, port: int = 0, host: str = "127.0.0.1"
    ) -> None:
        self._warehouse, self._interval, self._port, self._host = warehouse, interval_s, port, host
        self._client: Client | None = None
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, str], float] = defaultdict(float)
        self._reported: dict[tuple[str, str], float] = {}
        self._gauges: dict[tuple[str, str], float] = {}
        self._samples: dict[str, list[np.ndarray]] = defaultdict(list)
        self._sample_counts: dict[str, int] = defaultdict(int)  # values in _samples[metric]
        self._last: dict[str, float] = {}
        self._started = False
        self._stop = threading.Event()
        self._last_report = time.monotonic()
        self.process = f"{socket.gethostname()}:{os.getpid()}"

    # -- recording -----------------------------------------------------------------------------

    def inc(self, metric: str, n: float = 1, label: str = "") -> None:
        with self._lock:
            self._counters[(metric, label)] += n

    def gauge(self, metric: str, value: float, label: str = "") -> None:
        with self._lock:
            self._gauges[(metric, label)] = value

    def observe(self, metric: str, values: np.ndarray | Sequence[float]) -> None:
        array = np.asarray(values, dtype=np.float64)
        if array.size == 0:
            return
        with self._lock:
            self._samples[metric].append(array)
            self._sample_counts[metric] += array.size
            if self._sample_counts[metric] > _MAX_SAMPLES:
                kept = np.concatenate(self._samples[metric])[-_MAX_SAMPLES // 2 :]
                self._samples[metric], self._sample_counts[metric] = [kept], kept.size

    # -- reporting -----------------------------------------------------------------------------

    def collect(self) -> list[tuple[str, str, float]]:
        """(metric, label, value) rows for the interval since the last call; resets the samples."""
        now = time.monotonic()
        with self._lock:
            elapsed = max(now - self._last_report, 1e-6)
            self._last_report = now
            rows = []
            for key, total in self._counters.items():
                rows.append((f"{key[0]}_per_s", key[1], (total - self._reported.get(key, 0.0)) / elapsed))
                rows.append((f"{key[0]}_total", key[1], total))
                self._reported[key] = total
            rows += [(metric, label, value) for (metric, label), value in self._gauges.items()]
            samples, self._samples = self._samples, defaultdict(list)
            self._sample_counts = defaultdict(int)
        for metric, arrays in samples.items():
            values = np.concatenate(arrays)
            for p, v in zip(PERCENTILES, np.percentile(values, PERCENTILES), strict=True):
                rows.append((f"{metric}_p{p}", "", float(v)))
        self._last = {f"{m}{{{lbl}}}" if lbl else m: v for m, lbl, v in rows}
        return rows

    def start(self) -> None:
        """Start the writer thread and the Prometheus endpoint once per process."""
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._run, name="pipeline-metrics", daemon=True).start()
        atexit.register(self.write)
        if self._port:
            self._serve_prometheus()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.write()

    def write(self) -> None:
        """Collect the interval and insert it into ``pipeline_metrics`` (skipped while the warehouse is down)."""
        rows = self.collect()
        if self._warehouse is None or not rows:
            return
        now_ms = time.time_ns() // 1_000_000
        try:
            self._client = self._client or create_client(self._warehouse, role="writer")
            metric, label, value = zip(*rows, strict=True)
            table = pa.table(
                {
                    "time": pa.array([now_ms] * len(rows), pa.timestamp("ms", "UTC")),
                    "process": [self.process] * len(rows),
                    "metric": list(metric),
                    "label": list(label),
                    "value": pa.array(value, pa.float64()),
                }
            )
            self._client.insert_arrow("pipeline_metrics", table)
        except Exception as exc:  # the warehouse may be down: metrics wait, the flow goes on
            log.warning("pipeline metrics not written: %s", exc)
            self._client = None

    def _serve_prometheus(self) -> None:
        from prometheus_client import start_http_server
        from prometheus_client.core import REGISTRY, GaugeMetricFamily

        metrics = self

        class _Collector:
            def collect(self):
                families: dict[str, GaugeMetricFamily] = {}
                for key, value in dict(metrics._last).items():
                    name, _, label = key.partition("{")
                    family = families.setdefault(
                        name, GaugeMetricFamily(f"eventpulse_flow_{name}", f"EventPulse flow: {name}", labels=["label"])
                    )
                    family.add_metric([label.rstrip("}")], value)
                yield from families.values()

        REGISTRY.register(_Collector())
        start_http_server(self._port, addr=self._host)
