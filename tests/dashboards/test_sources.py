"""Which tables a historical chart reads (pure planning, no warehouse)."""

from datetime import UTC, datetime

from dashboards.sources import HOUR, MINUTE, auto_granularity, plan_sources


def t(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def test_minute_buckets_read_the_stream_windows_only():
    coverage = {"rollup_hourly": (t(1, 0), t(3, 0)), "window_aggregates": (t(1, 0), t(3, 5))}
    plan = plan_sources(t(2, 0), t(2, 6), MINUTE, coverage)
    assert [(s.table.name, s.start, s.end) for s in plan] == [("window_aggregates", t(2, 0), t(2, 6))]


def test_hour_buckets_use_rollups_where_they_exist_then_windows():
    # Rollups hold whole hours up to 03:00 (naive UTC, as the warehouse returns them).
    coverage = {
        "rollup_daily": None,
        "rollup_hourly": (datetime(2026, 11, 2, 0), datetime(2026, 11, 3, 3)),
        "window_aggregates": (t(2, 12), t(3, 4, 30)),
    }
    plan = plan_sources(t(1, 0), t(3, 5), HOUR, coverage)
    assert [(s.table.name, s.start, s.end) for s in plan] == [
        ("window_aggregates", t(1, 0), t(2, 0)),
        ("rollup_hourly", t(2, 0), t(3, 3)),
        ("window_aggregates", t(3, 3), t(3, 5)),
    ]


def test_day_buckets_prefer_daily_rollups_and_fill_from_hourly():
    coverage = {
        "rollup_daily": (t(1, 0), t(3, 0)),
        "rollup_hourly": (t(1, 0), t(4, 0)),
        "window_aggregates": (t(3, 0), t(5, 0)),
    }
    plan = plan_sources(t(1, 0), t(5, 0), 86400, coverage)
    assert [(s.table.name, s.start, s.end) for s in plan] == [
        ("rollup_daily", t(1, 0), t(3, 0)),
        ("rollup_hourly", t(3, 0), t(4, 0)),
        ("window_aggregates", t(4, 0), t(5, 0)),
    ]


def test_auto_granularity():
    assert auto_granularity(t(1, 0), t(1, 6)) == "minute"
    assert auto_granularity(t(1, 0), t(8, 0)) == "hour"
    assert auto_granularity(t(1, 0), t(30, 0)) == "day"
