"""Compare what the stream wrote with a batch recomputation from raw events, for a time range.

Used by the orchestration's asset check and by the tests::

    differences = reconcile(client, WindowSpec(60, 60), start, end)
    assert not differences, [d.as_dict() for d in differences[:10]]
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from eventpulse.aggregation.batch_sql import recompute_query
from eventpulse.aggregation.compare import Difference, compare_rows
from eventpulse.aggregation.spec import KEY_COLUMNS, WindowSpec, metric_names

_STREAM_QUERY = """
SELECT {columns}
FROM window_aggregates FINAL
WHERE window_seconds = {{window_seconds:UInt32}} AND slide_seconds = {{slide_seconds:UInt32}}
  AND window_start >= {{start:DateTime64(3, 'UTC')}} AND window_start < {{end:DateTime64(3, 'UTC')}}
  AND (tenant = {{tenant:String}} OR {{tenant:String}} = '')
  AND origin = {{origin:String}} AND (is_final = 1 OR {{final_only:UInt8}} = 0)
ORDER BY {keys}
"""


def stream_rows(
    client: Client,
    window: WindowSpec,
    start: datetime,
    end: datetime,
    tenant: str = "",
    *,
    origin: str = "stream",
    final_only: bool = True,
) -> list[dict[str, Any]]:
    """Latest version of each ``window_aggregates`` row of ``window`` starting in [start, end)."""
    columns = (*KEY_COLUMNS, "window_end", *metric_names())
    sql = _STREAM_QUERY.format(columns=", ".join(columns), keys=", ".join(KEY_COLUMNS))
    params = {
        "window_seconds": window.seconds,
        "slide_seconds": window.slide_seconds,
        "start": start,
        "end": end,
        "tenant": tenant,
        "origin": origin,
        "final_only": int(final_only),
    }
    return list(client.query(sql, parameters=params).named_results())


def batch_rows(client: Client, window: WindowSpec, start: datetime, end: datetime, tenant: str = "") -> list[dict]:
    """Rows of ``window`` recomputed from raw events (`batch_sql.recompute_query`)."""
    sql, params = recompute_query(window, start, end, tenant)
    return list(client.query(sql, parameters=params).named_results())


def reconcile(
    client: Client,
    window: WindowSpec | Iterable[WindowSpec],
    start: datetime,
    end: datetime,
    tenant: str = "",
    *,
    final_only: bool = True,
) -> list[Difference]:
    """Every difference between the stream's rows and the batch recomputation, over one or more families."""
    windows = [window] if isinstance(window, WindowSpec) else list(window)
    differences: list[Difference] = []
    for w in windows:
        stream = stream_rows(client, w, start, end, tenant, final_only=final_only)
        differences += compare_rows(stream, batch_rows(client, w, start, end, tenant))
    return differences
