"""Watch how far the dataflow trails the events topic, and alert when it falls behind."""

import json
from datetime import UTC, datetime

import dagster as dg

from eventpulse.broker.admin import consumer_lag
from orchestration.alerting.delivery import process
from orchestration.alerting.firing import Firing
from orchestration.alerting.service import policy
from orchestration.resources import AlertingResource, BrokerResource, PlatformResource, WarehouseResource


def processed_offsets(client, topic: str) -> dict[int, int]:
    """Next offset to process per partition, from what reached the warehouse (events and dead letters).

    The dataflow keeps its offsets in Bytewax recovery snapshots, not in a consumer group, so
    the warehouse is where its progress is visible: ``max(topic_offset) + 1`` per partition.
    """
    rows = client.query(
        "SELECT p, max(o) + 1 FROM ("
        "SELECT topic_partition AS p, topic_offset AS o FROM events WHERE ingested_at >= now() - INTERVAL 2 DAY "
        "UNION ALL SELECT toUInt32(topic_partition), toUInt64(topic_offset) FROM dead_letters "
        "WHERE topic = {topic:String} AND topic_offset >= 0 AND received_at >= now() - INTERVAL 2 DAY"
        ") GROUP BY p",
        parameters={"topic": topic},
    ).result_rows
    return {int(p): int(o) for p, o in rows}


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Consumer lag of the dataflow: log-end offsets of the events topic (broker admin API) minus the offsets "
        "that reached the warehouse. Above max_consumer_lag it records and posts a 'consumer_lag' alert "
        "(deduplicated per minute)."
    ),
)
def consumer_lag_sensor(
    context: dg.SensorEvaluationContext,
    broker: BrokerResource,
    warehouse: WarehouseResource,
    alerting: AlertingResource,
    platform: PlatformResource,
) -> dg.SkipReason:
    topic = broker.settings().events_topic
    offsets = broker.partition_offsets(topic)
    with warehouse.client() as client:
        lag = consumer_lag(offsets, processed_offsets(client, topic))
        total = sum(lag.values())
        limit = platform.orchestration().max_consumer_lag
        context.update_cursor(json.dumps({"lag": total, "by_partition": lag}))
        if total <= limit:
            return dg.SkipReason(f"consumer lag {total} messages on {topic} (limit {limit})")
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        firing = Firing(
            rule="consumer_lag",
            severity="critical",
            tenant="*",
            type="*",
            metric="consumer_lag",
            value=float(total),
            threshold=float(limit),
            comparison=">",
            window_seconds=60,
            window_start=now,
            message=f"the dataflow trails {topic} by {total} messages (limit {limit}): {lag}",
        )
        report = process(client, [firing], policy(alerting))
    return dg.SkipReason(f"consumer lag {total} > {limit} on {topic}: alert recorded ({report})")
