"""Demo traffic (the `make run` profile and rate) through the real pipeline, with an error spike.

Events: the synthetic generator's 20 tenants at 1,000 events/s (~6.9 % errors), for ``MINUTES`` of
event time; during ``SPIKE`` an extra stream for one tenant at 300 events/s, 90 % errors, merged in
event-time order. Broker → the real dataflow → ``window_aggregates``; the rules are then evaluated
as the sensor would at each minute (``ticks``).
"""

import heapq
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devstack.traffic.generator import EventFactory, GeneratedMessage, TrafficProfile
from eventpulse.config.broker import BrokerSettings
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.schema import migrate
from tests.support.pipeline import init_recovery, produce, run_flow_until_drained

RATE = 1000.0
MINUTES = 14
STEADY_MINUTES = 11  # minutes [0, 11): steady only
SPIKE = (11, 13)  # minutes of the spike
SPIKE_RATE = 300.0
SPIKE_TENANT = "tenant-00"


@dataclass(frozen=True)
class DemoRun:
    warehouse: WarehouseSettings
    start: datetime
    produced: int

    def at(self, minute: float) -> datetime:
        return self.start + timedelta(minutes=minute)

    def steady_ticks(self) -> list[datetime]:
        """One evaluation a minute while only steady windows have closed (at least 10 minutes of traffic)."""
        return [self.at(m) for m in range(1, STEADY_MINUTES + 1)]

    def ticks(self) -> list[datetime]:
        return [self.at(m) for m in range(1, MINUTES + 6)]


def _timed(
    messages: Iterator[GeneratedMessage], start_ms: int, rate: float, stream: int
) -> Iterator[tuple[float, int, int, GeneratedMessage]]:
    for i, message in enumerate(messages):
        yield start_ms + i * 1000 / rate, stream, i, message


def _merged(start_ms: int) -> Iterator[GeneratedMessage]:
    steady = EventFactory(TrafficProfile(), seed=16).messages(int(RATE * 60 * MINUTES), start_ms, RATE)
    spike_start = start_ms + SPIKE[0] * 60_000
    profile = TrafficProfile(tenants=1, error_share=0.9, invalid_share=0.0)
    spike = EventFactory(profile, seed=61).messages(
        int(SPIKE_RATE * 60 * (SPIKE[1] - SPIKE[0])), spike_start, SPIKE_RATE
    )
    for *_, message in heapq.merge(_timed(steady, start_ms, RATE, 0), _timed(spike, spike_start, SPIKE_RATE, 1)):
        yield message


def run_demo(broker_bootstrap: str, topic: str, warehouse_url: str, tmp: Path) -> DemoRun:
    """Produce the traffic, run the dataflow until drained; the database holds its windows."""
    warehouse = WarehouseSettings(url=warehouse_url, database=f"t_{uuid.uuid4().hex[:12]}")
    migrate(warehouse)
    start = (datetime.now(UTC) - timedelta(minutes=MINUTES + 30)).replace(second=0, microsecond=0)
    broker = BrokerSettings(bootstrap=broker_bootstrap, events_topic=topic, partitions=4)
    produced = produce(broker_bootstrap, topic, _merged(int(start.timestamp() * 1000)))
    init_recovery(tmp / "recovery")
    run_flow_until_drained(broker, warehouse, recovery_dir=tmp / "recovery", timeout=420)
    return DemoRun(warehouse, start, produced)
