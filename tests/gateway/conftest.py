"""A real gateway (uvicorn, in a thread of the test process, or ``python -m gateway`` as a process)
over the session's broker and a fresh migrated warehouse database; helpers to create keys and read
the events topic back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from confluent_kafka import Consumer, TopicPartition
from pydantic import SecretStr

from eventpulse.api_keys import DEFAULT_SCOPES, create_key
from eventpulse.broker.admin import consumer_config
from eventpulse.config.broker import BrokerSettings
from eventpulse.config.gateway import GatewaySettings
from eventpulse.config.redis import RedisSettings
from eventpulse.config.warehouse import WarehouseSettings
from eventpulse.config.webhooks import WebhookSettings
from eventpulse.settings import Settings
from eventpulse.warehouse.client import create_client
from eventpulse.webhooks.secrets import new_key, secret_box
from eventpulse.webhooks.signature import DELIVERY_HEADER, HEADER, sign
from eventpulse.webhooks.store import register_source
from gateway.app import create_app
from gateway.server import uvicorn_options
from tests.support.services import free_port, stop


@dataclass
class RunningGateway:
    url: str
    settings: Settings
    app: Any
    server: uvicorn.Server

    @property
    def services(self):
        return self.app.services

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"X-API-Key": key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)


@contextmanager
def serve(settings: Settings) -> Iterator[RunningGateway]:
    """Run ``create_app(settings)`` with uvicorn on ``settings.gateway.port`` until the block ends."""
    app = create_app(settings, configure_logs=False)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=settings.gateway.port,
        lifespan="on",
        log_level="warning",
        access_log=False,
        **uvicorn_options(settings.gateway),  # as `python -m gateway` serves it
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="gateway-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("gateway did not start")
        time.sleep(0.02)
    try:
        yield RunningGateway(f"http://127.0.0.1:{settings.gateway.port}", settings, app, server)
    finally:
        server.should_exit = True
        thread.join(30)


def gateway_settings(
    broker: BrokerSettings, warehouse: WarehouseSettings, redis: RedisSettings | None = None, **gateway: Any
) -> Settings:
    return Settings(
        broker=broker,
        warehouse=warehouse,
        redis=redis or RedisSettings(url=""),
        gateway=GatewaySettings(port=free_port(), **gateway),
    )


@pytest.fixture
def start_gateway(broker_settings: BrokerSettings, warehouse: WarehouseSettings):
    """``with start_gateway(rate_per_s=..., ...) as gw:`` a gateway with those gateway settings."""

    def start(**gateway: Any):
        return serve(gateway_settings(broker_settings, warehouse, **gateway))

    return start


@pytest.fixture
def gateway(start_gateway) -> Iterator[RunningGateway]:
    with start_gateway() as gw:
        yield gw


@pytest.fixture
def make_key(warehouse: WarehouseSettings) -> Callable[..., str]:
    """``make_key("acme", scopes=("ingest",))`` stores a key and returns it."""
    client = create_client(warehouse, role="admin")

    def make(tenant: str, scopes=DEFAULT_SCOPES, **kwargs: Any) -> str:
        return create_key(client, tenant, scopes, **kwargs)[1]

    yield make
    client.close()


def wait_for_key(gw: RunningGateway, key: str, timeout: float = 10.0) -> None:
    """Block until the gateway's key cache knows ``key`` (reloaded every ``key_refresh_s``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = gw.services.keys.authenticate(key, "ingest")
        if getattr(result, "status", 403) == 403:  # known (a 403 only means another scope)
            return
        time.sleep(0.05)
    raise TimeoutError("key not loaded by the gateway")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def event(event_id: str | None = None, **fields: Any) -> dict[str, Any]:
    doc = {"timestamp": now_ms(), "type": "user_action", "source": "web_app", "data": {"user_id": "u1"}}
    if event_id is not None:
        doc["id"] = event_id
    doc.update(fields)
    return doc


def read_topic(bootstrap: str, topic: str, expect: int | None = None, idle_s: float = 1.5, timeout: float = 30):
    """Every message of ``topic`` as ``(key, value_dict)``: until ``expect`` are read, or ``idle_s`` of quiet."""
    consumer = Consumer(consumer_config(BrokerSettings(bootstrap=bootstrap), group_id="gateway-tests"))
    try:
        metadata = consumer.list_topics(timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
        out: list[tuple[bytes, dict]] = []
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.consume(1000, 0.2)
            for msg in batch:
                if msg.error() is None:
                    out.append((msg.key(), orjson.loads(msg.value())))
            if batch:
                last = time.monotonic()
            if expect is not None and len(out) >= expect:
                # read a little longer to catch duplicates
                if time.monotonic() - last > 0.5:
                    break
            elif expect is None and time.monotonic() - last > idle_s:
                break
        return out
    finally:
        consumer.close()


def run(coro):
    return asyncio.run(coro)


def gateway_environment(settings: Settings) -> dict[str, str]:
    """``EVENTPULSE_*`` variables that make ``python -m gateway`` serve ``settings``' broker,
    warehouse, Redis and gateway port."""
    b, w, g, r = settings.broker, settings.warehouse, settings.gateway, settings.redis
    env = {
        "EVENTPULSE_BROKER_BOOTSTRAP": b.bootstrap,
        "EVENTPULSE_BROKER_EVENTS_TOPIC": b.events_topic,
        "EVENTPULSE_BROKER_DEAD_LETTER_TOPIC": b.dead_letter_topic,
        "EVENTPULSE_WAREHOUSE_URL": w.url,
        "EVENTPULSE_WAREHOUSE_DATABASE": w.database,
        "EVENTPULSE_REDIS_URL": r.url,
        "EVENTPULSE_REDIS_KEY_PREFIX": r.key_prefix,
    }
    for name, value in g.model_dump(exclude_defaults=True).items():
        env[f"EVENTPULSE_GATEWAY_{name.upper()}"] = str(value)
    return env


@contextmanager
def gateway_process(settings: Settings, log: Path) -> Iterator[str]:
    """``python -m gateway`` (a real process, as deployed) serving ``settings``; yields its URL once
    it is ready. SIGTERM at the end of the block (a graceful stop)."""
    url = f"http://127.0.0.1:{settings.gateway.port}"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **gateway_environment(settings)},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/api/health/ready", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"gateway not ready:\n{log.read_text()[-4000:]}")
            time.sleep(0.1)
        yield url
    finally:
        stop(proc, grace=20)


# --- Webhooks ------------------------------------------------------------------------------------


def with_webhooks(settings: Settings, **webhooks: Any) -> Settings:
    """``settings`` with a fresh webhook secrets key (and these webhook settings)."""
    hooks = WebhookSettings(secrets_key=SecretStr(new_key()), refresh_s=0.2, **webhooks)
    return settings.model_copy(update={"webhooks": hooks})


def register_webhook(settings: Settings, tenant: str, source: str, mapping: dict[str, Any]) -> str:
    """Register ``source`` for ``tenant`` in ``settings``' warehouse; returns its signing secret."""
    client = create_client(settings.warehouse, role="admin")
    try:
        return register_source(client, secret_box(settings), tenant, source, mapping)[1]
    finally:
        client.close()


def wait_for_source(gw: RunningGateway, source: str, timeout: float = 10.0) -> None:
    """Block until the gateway's source cache knows ``source``."""
    deadline = time.monotonic() + timeout
    while gw.services.webhook_sources.get(source) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"webhook source {source!r} not loaded by the gateway")
        time.sleep(0.05)


def post_webhook(
    http: httpx.Client,
    source: str,
    secret: str,
    body: bytes,
    *,
    at: int | None = None,
    delivery: str | None = None,
    header: str | None = None,
) -> httpx.Response:
    """POST ``body`` to ``source``'s webhook, signed with ``secret`` at ``at`` (now), or with ``header``."""
    headers = {"Content-Type": "application/json"}
    headers[HEADER] = header if header is not None else sign(secret, at or int(time.time()), body)
    if delivery is not None:
        headers[DELIVERY_HEADER] = delivery
    return http.post(f"/api/webhooks/{source}", content=body, headers=headers)
