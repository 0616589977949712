"""Hand-made ``window_aggregates`` rows (closed, tenant-wide, 60 s) for alerting tests that step time."""

from datetime import datetime, timedelta

from clickhouse_connect.driver.client import Client

from eventpulse.aggregation.spec import metric_names

COLUMNS = ["tenant", "window_seconds", "slide_seconds", "window_start", "window_end", "type", "source"]
COLUMNS += [*metric_names(), "is_final", "origin", "version", "emitted_at"]


def window_row(
    tenant: str, start: datetime, events: int, errors: int = 0, p99: float = 100.0, type_: str = "*", source: str = "*"
) -> list:
    metrics = dict.fromkeys(metric_names(), 0)
    metrics.update(
        event_count=events, error_count=errors, error_rate=errors / events if events else 0.0, latency_p99=p99
    )
    key = [tenant, 60, 60, start, start + timedelta(seconds=60), type_, source]
    return [*key, *metrics.values(), 1, "stream", 1, start]


def insert_windows(client: Client, rows: list[list]) -> None:
    client.insert("window_aggregates", rows, column_names=COLUMNS)


def minutes(start: datetime, count: int) -> list[datetime]:
    return [start + timedelta(minutes=m) for m in range(count)]
