"""Watch how far the dataflow trails the events topic, and alert when it falls behind, reads from an
invalid position, or reports an incident.

The lag is never clamped to 0: a partition whose processed position lies beyond the log end (the
broker lost data or the topic was recreated: its offsets start from 0 again) or before its start, or
whose last recorded incarnation is not the broker's topic any more, is reported as an invalid
position, recorded in ``pipeline_incidents`` and alerted. Every incident the dataflow recorded
(e.g. an offset reset) is alerted once too.
"""

import hashlib
import json
from datetime import UTC, datetime, timedelta

import dagster as dg
from clickhouse_connect.driver.client import Client

from eventpulse.broker.admin import PartitionLag, log_end_offsets, partition_lag, topic_id
from eventpulse.incidents import Incident, current_incarnations, insert_incidents, recent_incidents
from orchestration.alerting.delivery import process
from orchestration.alerting.firing import Firing
from orchestration.alerting.service import policy
from orchestration.resources import AlertingResource, BrokerResource, PlatformResource, WarehouseResource

INCARNATION_MARGIN_S = 5
"""Rows ingested this soon after a running flow reset a partition may still be the previous
incarnation's (the sinks flush what they hold): they are left out of the new incarnation's progress.
(A flow that starts has nothing in flight: no margin then.)"""


def processed_offsets(client: Client, topic: str) -> dict[int, int]:
    """Next offset to process per partition, from what reached the warehouse (events and dead letters).

    The dataflow keeps its offsets in Bytewax recovery snapshots, not in a consumer group, so
    the warehouse is where its progress is visible: ``max(topic_offset) + 1`` per partition, over
    the rows ingested since the partition's current incarnation started (``topic_incarnations``):
    the offsets of an older incarnation (a recreated topic) say nothing about the new log.
    """
    rows = client.query(
        "SELECT e.p, max(e.o) + 1 FROM ("
        "SELECT topic_partition AS p, topic_offset AS o, ingested_at AS t FROM events "
        "WHERE ingested_at >= now() - INTERVAL 2 DAY "
        "UNION ALL SELECT toUInt32(topic_partition), toUInt64(topic_offset), ingested_at FROM dead_letters "
        "WHERE topic = {topic:String} AND topic_offset >= 0 AND received_at >= now() - INTERVAL 2 DAY"
        ") AS e LEFT JOIN ("
        "SELECT toUInt32(partition) AS p, max(started_at) AS since, argMax(reason, started_at) = 'reset' AS reset "
        "FROM topic_incarnations WHERE topic = {topic:String} GROUP BY partition"
        ") AS i ON e.p = i.p "
        "WHERE i.since = toDateTime64(0, 3, 'UTC') OR e.t >= i.since + toIntervalSecond(i.reset * {margin:UInt32}) "
        "GROUP BY e.p",
        parameters={"topic": topic, "margin": INCARNATION_MARGIN_S},
        settings={"join_use_nulls": 0},
    ).result_rows
    return {int(p): int(o) for p, o in rows}


def _incident_id(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:32]


def invalid_positions(
    client: Client, topic: str, lags: dict[int, PartitionLag], broker_topic_id: str | None
) -> list[Incident]:
    """Incidents for partitions read from an invalid position (their ids repeat while it lasts)."""
    incidents = []
    incarnations = current_incarnations(client, topic)
    for p, lag in sorted(lags.items()):
        recorded = incarnations.get(p, {}).get("topic_id") or ""
        if broker_topic_id and recorded and recorded != broker_topic_id:
            kind, detail = (
                "stale_incarnation",
                f"the dataflow last read topic id {recorded}, the broker has {broker_topic_id}",
            )
        elif not lag.valid:
            kind, detail = f"position_{lag.state}", f"warehouse progress {lag.processed}, log [{lag.low}, {lag.high})"
        else:
            continue
        incidents.append(
            Incident(
                component="dagster",
                kind=kind,
                topic=topic,
                partition=p,
                expected_offset=-1 if lag.processed is None else lag.processed,
                log_start=lag.low,
                log_end=lag.high,
                action="alerted; the dataflow resets by EVENTPULSE_STREAM_OFFSET_RESET when it reads the partition",
                detail=detail,
                incident_id=_incident_id(topic, p, kind, lag.processed, recorded),
            )
        )
    return incidents


def known_incidents(client: Client, incidents: list[Incident]) -> set[str]:
    """The ids of ``incidents`` already recorded (an invalid position lasts: one row, not one a minute)."""
    if not incidents:
        return set()
    rows = client.query(
        "SELECT DISTINCT incident_id FROM pipeline_incidents WHERE incident_id IN {ids:Array(String)}",
        parameters={"ids": [i.incident_id for i in incidents]},
    ).result_rows
    return {r[0] for r in rows}


def incident_firing(row: dict) -> Firing:
    """An alert for one ``pipeline_incidents`` row (one per incident: keyed by its id)."""
    return Firing(
        rule="pipeline_incident",
        severity="critical",
        tenant="*",
        type=str(row["kind"]),
        metric="offset_resets" if row["component"] == "flow" else "consumer_lag",
        value=float(row["expected_offset"]),
        threshold=float(row["log_end"]),
        comparison="outside",
        window_seconds=0,
        window_start=row["time"],
        message=(
            f"{row['component']}: {row['kind']} on {row['topic']}[{row['partition']}], position "
            f"{row['expected_offset']}, log [{row['log_start']}, {row['log_end']}): {row['action']} ({row['detail']})"
        ),
        dedup_key=f"incident:{row['incident_id']}"[:64],
    )


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Consumer lag of the dataflow: exact log-end offsets of the events topic minus the offsets that reached "
        "the warehouse in the current topic incarnation. Above max_consumer_lag it records and posts a "
        "'consumer_lag' alert (deduplicated per minute); an invalid position (beyond the log end, before its "
        "start, or a topic recreated under the flow) is recorded as an incident, never read as lag 0; every "
        "pipeline incident is alerted once ('pipeline_incident')."
    ),
)
def consumer_lag_sensor(
    context: dg.SensorEvaluationContext,
    broker: BrokerResource,
    warehouse: WarehouseResource,
    alerting: AlertingResource,
    platform: PlatformResource,
) -> dg.SkipReason:
    settings = broker.settings()
    topic = settings.events_topic
    offsets = log_end_offsets(settings, topic)
    broker_topic_id = topic_id(broker.admin(), topic)
    with warehouse.client() as client:
        lags = partition_lag(offsets, processed_offsets(client, topic))
        invalid = invalid_positions(client, topic, lags, broker_topic_id)
        known = known_incidents(client, invalid)
        insert_incidents(client, [i for i in invalid if i.incident_id not in known])
        bad = {i.partition for i in invalid}
        total = sum(lag.lag or 0 for p, lag in lags.items() if p not in bad)
        by_partition = {p: (None if p in bad else lag.lag) for p, lag in lags.items()}
        limit = platform.orchestration().max_consumer_lag
        context.update_cursor(
            json.dumps({"lag": total, "by_partition": by_partition, "invalid": {i.partition: i.kind for i in invalid}})
        )
        now = datetime.now(UTC)
        firings = [incident_firing(row) for row in recent_incidents(client, now - timedelta(days=1))]
        if total > limit:
            firings.append(
                Firing(
                    rule="consumer_lag",
                    severity="critical",
                    tenant="*",
                    type="*",
                    metric="consumer_lag",
                    value=float(total),
                    threshold=float(limit),
                    comparison=">",
                    window_seconds=60,
                    window_start=now.replace(second=0, microsecond=0),
                    message=f"the dataflow trails {topic} by {total} messages (limit {limit}): {by_partition}",
                )
            )
        report = process(client, firings, policy(alerting)) if firings else None
    if total > limit:
        summary = f"consumer lag {total} > {limit} on {topic}"
    else:
        summary = f"consumer lag {total} messages on {topic} (limit {limit})"
    if invalid:
        summary += "; invalid positions: " + ", ".join(f"{i.partition}: {i.kind}" for i in invalid)
    return dg.SkipReason(f"{summary}; alerts {report}" if report else summary)
