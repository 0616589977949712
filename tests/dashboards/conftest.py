"""One database filled by the real pipeline, shared by every dashboard and notebook test.

Traffic from the generator is produced to a fresh topic and the real dataflow runs until it
has drained it (`tests.support.pipeline`), so pages are checked against what the stream wrote.
"""

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import streamlit as st
from confluent_kafka.admin import AdminClient, NewTopic

from devstack.traffic.generator import EventFactory, GeneratedMessage
from eventpulse.config.broker import BrokerSettings
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.client import create_client
from eventpulse.warehouse.schema import migrate
from tests.dashboards.seeding import PROFILE
from tests.support.pipeline import produce, run_flow_until_drained

MESSAGES = 24_000
RATE_PER_S = 60.0
REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "dashboards" / "streamlit_app.py")


@dataclass(frozen=True)
class Filled:
    """A database the pipeline filled: settings, the event-time span and what was sent."""

    warehouse: WarehouseSettings
    broker: BrokerSettings
    start: datetime
    end: datetime
    valid: int
    invalid: int
    messages: tuple[GeneratedMessage, ...] = field(default=(), repr=False, compare=False)  # what was produced


def create_topics(bootstrap: str, *names: str, partitions: int = 4) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(n, partitions, 1) for n in names]).values():
        future.result(timeout=30)


def fresh_database(url: str) -> WarehouseSettings:
    settings = WarehouseSettings(url=url, database=f"dash_{uuid.uuid4().hex[:10]}")
    migrate(settings)
    return settings


_FILLED: dict[tuple[str, str], Filled] = {}


@pytest.fixture(scope="session")
def filled(warehouse_url: str, broker_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Filled:
    """The pipeline's output for ~7 minutes of traffic ending a minute ago (all windows closed).

    Filled once per session even when several test folders import this fixture.
    """
    key = (warehouse_url, broker_bootstrap)
    if key not in _FILLED:
        _FILLED[key] = fill(warehouse_url, broker_bootstrap, tmp_path_factory.mktemp("dash-flow") / "flow.log")
    return _FILLED[key]


def fill(warehouse_url: str, broker_bootstrap: str, log: Path) -> Filled:
    """Produce generated traffic to fresh topics and run the real dataflow until drained."""
    warehouse = fresh_database(warehouse_url)
    suffix = uuid.uuid4().hex[:8]
    broker = BrokerSettings(
        bootstrap=broker_bootstrap, events_topic=f"dash-events-{suffix}", dead_letter_topic=f"dash-dead-{suffix}"
    )
    create_topics(broker_bootstrap, broker.events_topic, broker.dead_letter_topic)
    start_ms = int(time.time() * 1000) - int(MESSAGES / RATE_PER_S * 1000) - 60_000
    messages = list(EventFactory(PROFILE, seed=11).messages(MESSAGES, start_ms, RATE_PER_S))
    produce(broker_bootstrap, broker.events_topic, messages)
    run_flow_until_drained(
        broker, warehouse, timeout=150, log=log, extra_env={"EVENTPULSE_STREAM_METRICS_INTERVAL_S": "1"}
    )
    valid = sum(m.valid for m in messages)
    start = datetime.fromtimestamp(start_ms / 1000, tz=UTC)
    end = datetime.fromtimestamp((start_ms + MESSAGES / RATE_PER_S * 1000) / 1000, tz=UTC)
    return Filled(warehouse, broker, start, end, valid, len(messages) - valid, tuple(messages))


@pytest.fixture
def dashboard_env(monkeypatch: pytest.MonkeyPatch, filled: Filled) -> Iterator[Filled]:
    """Point `Settings()` (read by the app in-process) at the filled database; empty caches."""
    use_warehouse(monkeypatch, filled.warehouse)
    yield filled
    st.cache_data.clear()


def use_warehouse(monkeypatch: pytest.MonkeyPatch, warehouse: WarehouseSettings) -> None:
    monkeypatch.setenv("EVENTPULSE_WAREHOUSE_URL", warehouse.url)
    monkeypatch.setenv("EVENTPULSE_WAREHOUSE_DATABASE", warehouse.database)
    monkeypatch.setenv("EVENTPULSE_DASHBOARD_GATEWAY_URL", "http://127.0.0.1:9")  # nothing listens on discard
    monkeypatch.setenv("EVENTPULSE_REDIS_URL", "")  # no query cache unless a test sets one
    st.cache_data.clear()


@pytest.fixture
def sql(filled: Filled):
    """Run a direct query on the filled database: ``sql(query, **params) -> rows``."""
    client = create_client(filled.warehouse, role="admin")

    def run(query: str, **params):
        return client.query(query, parameters=params).result_rows

    yield run
    client.close()
