"""docs/capacity.md and deploy/capacity.py: the page shows what the arithmetic gives."""

import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("eventpulse_capacity_doc", ROOT / "deploy" / "capacity.py")
assert spec and spec.loader
capacity = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = capacity
spec.loader.exec_module(capacity)
PAGE = (ROOT / "docs" / "capacity.md").read_text()


def page_table() -> str:
    match = re.search(r"<!-- capacity-table:start -->\n(.*?)\n<!-- capacity-table:end -->", PAGE, re.S)
    assert match, "docs/capacity.md lost its table markers"
    return match[1].strip()


def test_the_page_table_is_the_models_output() -> None:
    assert page_table() == capacity.markdown_table(1_000_000)


def test_the_arithmetic_at_one_million_events_per_second() -> None:
    """Worked by hand from the measured figures, so a change to the model's formulas shows."""
    plan = capacity.Plan(1_000_000)
    assert round(plan.cores(capacity.GATEWAY), 1) == 8.9
    assert plan.gateway_replicas == 13  # 8.9 / 0.7 = 12.7
    assert round(plan.cores(capacity.FLOW), 1) == 10.5
    assert plan.flow_processes == 15  # 10.5 / 0.7 = 15.0 exactly: no 16th process from float noise
    assert plan.partitions == 30
    assert plan.broker_cores == 18.0  # 6 µs x 3 replicas
    assert plan.clickhouse_shards == 2  # 6 cores per replica set / (8 cores x 50 %)
    assert capacity.lag_threshold() == 333_000  # 1 core x 0.7 / 10.5 µs x 5 s


def test_a_changed_figure_changes_the_table() -> None:
    """Negative control: the page check is not comparing a constant with itself."""
    original = capacity.FLOW
    try:
        capacity.FLOW = capacity.Stage("flow", 21.0, 1, "twice as slow")
        capacity.STAGES = (capacity.GATEWAY, capacity.BROKER, capacity.FLOW, capacity.WAREHOUSE)
        assert capacity.markdown_table(1_000_000) != page_table()
        assert capacity.Plan(1_000_000).flow_processes == 30
    finally:
        capacity.FLOW = original
        capacity.STAGES = (capacity.GATEWAY, capacity.BROKER, capacity.FLOW, capacity.WAREHOUSE)


def test_the_measured_figures_are_the_ones_the_readmes_report() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "8.3-8.9 µs/event" in readme and capacity.GATEWAY.us_per_event == 8.9
    assert "~10.5 µs per event" in readme and capacity.FLOW.us_per_event == 10.5
    assert "(12 vs 6 µs)" in (ROOT / "gateway" / "README.md").read_text() and capacity.BROKER.us_per_event == 6.0
    assert "~8 µs → ~6 µs measured" in (ROOT / "flows" / "README.md").read_text()
    assert capacity.WAREHOUSE.us_per_event == 6.0
