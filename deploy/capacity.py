"""Capacity model: what the measured CPU cost per event of each stage implies at a target rate.

The per-stage figures are the ones measured on the 2-core development machine (README.md,
gateway/README.md, flows/README.md, the shared field notes); the assumptions are named constants.
docs/capacity.md shows `markdown_table()` and deploy/k8s/ takes its resource requests and
autoscaling targets from here; tests/deploy/test_capacity.py recomputes both, so neither the page
nor the manifests can drift from the arithmetic.

    python deploy/capacity.py [--rate 1000000]
"""

import argparse
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """One stage of the data path and its measured CPU cost."""

    name: str
    us_per_event: float
    """CPU microseconds per event (upper end of the measured range: plan for the worse runs)."""
    copies: int
    """How many times the cluster pays it per event (replicas that each do the work)."""
    measured: str


GATEWAY = Stage("gateway", 8.9, 1, "batches of 100: 8.3-8.9 µs/event, 1 worker (README.md, Benchmarks)")
GATEWAY_SINGLE = Stage("gateway, single events", 61.0, 1, "one event per request: 56-61 µs (README.md)")
BROKER = Stage(
    "broker", 6.0, 3, "Tansu, one producer: ~6 µs/event (gateway/README.md); x3 replicas at replication factor 3"
)
FLOW = Stage("flow", 10.5, 1, "flows.dataflow:flow end to end, ~10.5 µs/event (README.md)")
WAREHOUSE = Stage(
    "warehouse", 6.0, 2, "raw-event inserts and their merges, ~6 µs/event (flows/README.md); x2 replicas per shard"
)
STAGES = (GATEWAY, BROKER, FLOW, WAREHOUSE)

TARGET_UTILIZATION = 0.70
"""Planned CPU use of an autoscaled pod: room for a burst while the autoscaler adds pods."""
CORES_PER_GATEWAY = 1.0
"""A gateway pod is one event-loop process: CPU-bound at one core (gateway/README.md)."""
CORES_PER_FLOW_PROCESS = 1.0
"""A Bytewax process runs its Python steps under one GIL: one core each; scale with processes."""
PARTITION_HEADROOM = 2
"""Partitions per flow process at the target rate: the flow can double without repartitioning."""
CLICKHOUSE_SERVER_CORES = 8
"""Cores of one ClickHouse server (an assumption: a common 8-core node)."""
CLICKHOUSE_INGEST_SHARE = 0.5
"""Share of a server's cores for inserts and merges; the rest answers queries."""
LAG_CATCH_UP_S = 5.0
"""Consumer lag one flow process is allowed before KEDA adds one: what it reads in this many seconds."""


def _ceil(x: float) -> int:
    """Ceiling that ignores float noise (10.5 / 0.7 is 15.000000000000002, not 16 pods)."""
    return math.ceil(round(x, 9))


@dataclass(frozen=True)
class Plan:
    """What a target rate needs."""

    rate: float

    def cores(self, stage: Stage) -> float:
        """Busy cores of ``stage`` across the cluster at ``rate``."""
        return self.rate * stage.us_per_event * stage.copies / 1e6

    @property
    def gateway_replicas(self) -> int:
        return _ceil(self.cores(GATEWAY) / (CORES_PER_GATEWAY * TARGET_UTILIZATION))

    @property
    def flow_processes(self) -> int:
        return _ceil(self.cores(FLOW) / (CORES_PER_FLOW_PROCESS * TARGET_UTILIZATION))

    @property
    def partitions(self) -> int:
        return self.flow_processes * PARTITION_HEADROOM

    @property
    def clickhouse_shards(self) -> int:
        per_shard = CLICKHOUSE_SERVER_CORES * CLICKHOUSE_INGEST_SHARE
        return max(1, _ceil(self.cores(WAREHOUSE) / WAREHOUSE.copies / per_shard))

    @property
    def broker_cores(self) -> float:
        return self.cores(BROKER)

    @property
    def total_cores(self) -> float:
        return sum(self.cores(s) for s in STAGES)


def flow_events_per_s_per_process() -> float:
    """What one flow process reads at its planned utilisation."""
    return CORES_PER_FLOW_PROCESS * TARGET_UTILIZATION * 1e6 / FLOW.us_per_event


def lag_threshold() -> int:
    """KEDA's Kafka lagThreshold (messages per flow process): LAG_CATCH_UP_S of its planned rate."""
    return int(round(flow_events_per_s_per_process() * LAG_CATCH_UP_S, -3))


def cpu_request(cores: float) -> str:
    """A Kubernetes CPU quantity in millicores."""
    return f"{round(cores * 1000)}m"


def markdown_table(rate: float = 1_000_000) -> str:
    """The page's table: per stage, its measured cost, busy cores and what to deploy at ``rate``."""
    plan = Plan(rate)
    deploy = {
        GATEWAY.name: f"{plan.gateway_replicas} gateway replicas (1 core each, at {TARGET_UTILIZATION:.0%})",
        BROKER.name: f"{plan.partitions} partitions; {plan.broker_cores:.0f} broker cores as measured on Tansu",
        FLOW.name: f"{plan.flow_processes} flow processes (1 core each, at {TARGET_UTILIZATION:.0%})",
        WAREHOUSE.name: (
            f"{plan.clickhouse_shards} shards x {WAREHOUSE.copies} replicas of {CLICKHOUSE_SERVER_CORES} cores "
            f"({CLICKHOUSE_INGEST_SHARE:.0%} for ingest)"
        ),
    }
    lines = [
        f"| stage | CPU-µs per event | copies | busy cores at {rate:,.0f} events/s | deploy |",
        "|---|---|---|---|---|",
    ]
    for stage in STAGES:
        cores = plan.cores(stage)
        lines.append(f"| {stage.name} | {stage.us_per_event:g} | {stage.copies} | {cores:.1f} | {deploy[stage.name]} |")
    per_event = sum(s.us_per_event * s.copies for s in STAGES)
    lines.append(f"| **all stages** | {per_event:g} (x copies) | | **{plan.total_cores:.1f}** | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1_000_000, help="events per second")
    args = parser.parse_args()
    print(markdown_table(args.rate))
    print(f"\nKEDA lagThreshold per flow process: {lag_threshold()} messages")
    single = Plan(args.rate).cores(GATEWAY_SINGLE)
    print(f"Gateway cores if every event came alone: {single:.0f}")


if __name__ == "__main__":
    main()
