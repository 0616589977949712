"""The per-partition watermark (pure, no services)."""

from flows.watermarks import MIN_WATERMARK, PartitionWatermarks


def test_watermark_is_the_minimum_over_active_partitions() -> None:
    marks = PartitionWatermarks([0, 1], bound_ms=1000, idle_timeout_s=10, now=0.0)
    marks.observe(0, 50_000, now=0.0)
    assert marks.advance(now=0.5) == MIN_WATERMARK  # partition 1 not heard of yet: holds it back
    marks.observe(1, 20_000, now=1.0)
    assert marks.advance(now=1.0) == 19_000
    marks.observe(0, 60_000, now=2.0)
    assert marks.advance(now=2.0) == 19_000  # the slow partition decides


def test_idle_partition_stops_holding_the_watermark_back() -> None:
    marks = PartitionWatermarks([0, 1, 2], bound_ms=1000, idle_timeout_s=5, now=0.0)
    marks.observe(0, 100_000, now=0.0)
    marks.observe(1, 30_000, now=0.0)
    marks.observe(0, 110_000, now=6.0)
    assert marks.advance(now=6.0) == 109_000  # 1 and 2 idle for more than 5 s
    assert marks.advance(now=20.0) == 109_000  # all idle: the most advanced one


def test_watermark_never_goes_back_and_survives_a_restart() -> None:
    marks = PartitionWatermarks([0, 1], bound_ms=0, idle_timeout_s=5, now=0.0)
    marks.observe(0, 10_000, now=0.0)
    marks.observe(1, 8_000, now=0.0)
    assert marks.advance(now=0.0) == 8_000
    restored = PartitionWatermarks([0, 1], bound_ms=0, idle_timeout_s=5, state=marks.state())
    restored.observe(1, 5_000)
    assert restored.advance() == 8_000
