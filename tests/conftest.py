"""Session-wide fixtures: one real broker, one real warehouse server and one real Redis for the whole run.

Tests isolate themselves with their own topic (`new_topic`) and their own migrated database
(`warehouse`) and their own Redis key prefix (`redis_settings`), so they can share the servers.
"""

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from eventpulse.access.credentials import ensure_users_file
from eventpulse.config.broker import BrokerSettings
from eventpulse.config.redis import RedisSettings
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.warehouse.client import create_client
from eventpulse.warehouse.schema import migrate
from tests.support.examples import register_profiles
from tests.support.services import run_broker, run_redis, run_warehouse

register_profiles()  # before pytest's Hypothesis plugin loads `--hypothesis-profile`


@pytest.fixture(scope="session", autouse=True)
def warehouse_users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's warehouse users (admin, writer, reader), provisioned before anything starts.

    Exported as ``EVENTPULSE_WAREHOUSE_CREDENTIALS_FILE``: every warehouse server a test starts
    authenticates against it and every client and child process reads its role's password there.
    """
    path = tmp_path_factory.mktemp("access") / "warehouse-users.json"
    ensure_users_file(path)
    patch = pytest.MonkeyPatch()
    patch.setenv("EVENTPULSE_WAREHOUSE_CREDENTIALS_FILE", str(path))
    yield path
    patch.undo()


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def broker_bootstrap(stack_dir: Path) -> Iterator[str]:
    """Bootstrap address of a real Tansu broker (memory storage) for this test session."""
    with run_broker(stack_dir) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def warehouse_url(stack_dir: Path) -> Iterator[str]:
    """URL of a real warehouse server (chDB over ClickHouse's HTTP interface) for this session."""
    with run_warehouse(stack_dir) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url(stack_dir: Path) -> Iterator[str]:
    """URL of a real redis-server for this session (tests isolate by key prefix: `redis_settings`)."""
    with run_redis(stack_dir) as url:
        yield url


@pytest.fixture
def redis_settings(redis_url: str) -> RedisSettings:
    """Settings for the session's Redis with a key prefix of this test's own."""
    return RedisSettings(url=redis_url, key_prefix=f"t{uuid.uuid4().hex[:10]}:")


@pytest.fixture
def new_topic(broker_bootstrap: str) -> Callable[..., str]:
    """Create a uniquely named topic: ``new_topic(partitions=4)`` returns its name."""

    def create(partitions: int = 4, prefix: str = "events") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        admin = AdminClient({"bootstrap.servers": broker_bootstrap})
        for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
            future.result(timeout=30)
        return name

    return create


@pytest.fixture
def broker_settings(broker_bootstrap: str, new_topic: Callable[..., str]) -> BrokerSettings:
    """Broker settings whose events and dead-letter topics are fresh, 4 partitions each."""
    return BrokerSettings(
        bootstrap=broker_bootstrap,
        events_topic=new_topic(4),
        dead_letter_topic=new_topic(4, prefix="dead"),
        partitions=4,
    )


@pytest.fixture
def warehouse(warehouse_url: str) -> WarehouseSettings:
    """Settings for a fresh database, migrated, on the session's warehouse server."""
    settings = WarehouseSettings(url=warehouse_url, database=f"t_{uuid.uuid4().hex[:12]}")
    migrate(settings)
    return settings


@pytest.fixture
def warehouse_client(warehouse: WarehouseSettings):
    client = create_client(warehouse, role="admin")
    yield client
    client.close()


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ONE chDB path opened in-process by this pytest process (chDB allows one per process)."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def chdb_warehouse(chdb_path: Path) -> WarehouseSettings:
    """Settings for a fresh migrated database in the in-process chDB engine (``chdb://``)."""
    settings = WarehouseSettings(url=f"chdb://{chdb_path}", database=f"t_{uuid.uuid4().hex[:12]}")
    migrate(settings)
    return settings


_SERVICE_FIXTURES = frozenset({"broker_bootstrap", "warehouse_url", "chdb_path", "redis_url"})
"""Fixtures that start (or open) a real broker or warehouse: a test that uses one, directly or
through another fixture, is an integration test whatever its module says."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that needs a real service ``integration``, so ``-m "not integration"``
    (`make test-unit`) runs exactly the tests that need nothing but Python."""
    for item in items:
        # a ``slow`` test starts the stack itself (eventpulse up, a broker of its own)
        if _SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.integration)
