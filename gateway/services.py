"""Everything a gateway process holds: built from `Settings` by `build_services`, started and stopped
by the app's lifespan. Nothing here is created at import time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.client import Client

from eventpulse.broker.admin import admin_client, producer_config
from eventpulse.cache.client import SharedState, async_client
from eventpulse.events import EventValidator
from eventpulse.events.submitted import SubmittedEventParser
from eventpulse.schemas.registry import SchemaRegistry
from eventpulse.settings import Settings
from eventpulse.warehouse.client import create_client
from eventpulse.webhooks.secrets import secret_box
from gateway.auth import KeyCache
from gateway.dead_letters import DeadLetterWriter
from gateway.live_feed import StreamHub
from gateway.metrics import GatewayMetrics
from gateway.producer import AckingProducer
from gateway.query import QueryService
from gateway.query_cache import ResultCache
from gateway.rate_limit import Limiter
from gateway.readiness import ReadinessProbe
from gateway.recent_ids import RecentIds
from gateway.runtime import tune_gc
from gateway.schema_registry import SchemaMirror
from gateway.shared_recent_ids import SharedRecentIds
from gateway.shared_state import build_limiter, build_query_limiter, build_recent_ids, shared_state
from gateway.webhook_sources import ReplayGuard, SourceCache

log = logging.getLogger(__name__)


@dataclass
class GatewayServices:
    settings: Settings
    parser: SubmittedEventParser
    keys: KeyCache
    limiter: Limiter
    producer: AckingProducer
    dead_letters: DeadLetterWriter
    recent_ids: RecentIds | SharedRecentIds
    readiness: ReadinessProbe
    stream: StreamHub
    query: QueryService
    webhook_sources: SourceCache
    replays: ReplayGuard
    schemas: SchemaMirror
    warehouse_client: Callable[[], Client]  # a new writer connection (the registry API's writes)
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    redis: Any = None  # redis.asyncio.Redis when EVENTPULSE_REDIS_URL is set

    async def start(self) -> None:
        self.producer.start(asyncio.get_running_loop())
        await self.keys.start()
        await self.dead_letters.start()
        await self.webhook_sources.start()
        await self.schemas.start()
        gw = self.settings.gateway
        tune_gc(gw.gc_gen0_threshold, gw.gc_freeze)
        log.info(
            "gateway started",
            extra={"topic": self.producer.topic, "keys_loaded": self.keys.loaded, "keys_error": self.keys.last_error},
        )

    async def stop(self) -> None:
        await self.stream.stop()
        self.query.close()
        left = await self.producer.close(10.0)
        await self.dead_letters.stop()
        await self.keys.stop()
        await self.webhook_sources.stop()
        await self.schemas.stop()
        self.readiness.close()
        if self.redis is not None:
            await self.redis.aclose()
        log.info("gateway stopped", extra={"unflushed_events": left})

    def shared_state(self) -> SharedState:
        return shared_state(self.settings, self.limiter)

    def gauges(self) -> dict[str, int]:
        return {
            "producer_queue_depth": self.producer.queued,
            "dead_letters_pending": self.dead_letters.pending,
            "dead_letters_written": self.dead_letters.written,
            "dead_letters_dropped": self.dead_letters.dropped,
            "stream_subscribers": self.stream.subscribers,
            "shared_state_up": int(self.shared_state().mode == "redis"),
        }


def build_services(settings: Settings) -> GatewayServices:
    gw = settings.gateway
    metrics = GatewayMetrics()
    redis = async_client(settings.redis)

    def warehouse_client():
        return create_client(settings.warehouse, role="writer", autogenerate_session_id=False)

    def reader_client():  # the live stream reads as the warehouse's reader, through the scoped path
        return create_client(settings.warehouse, role="reader", autogenerate_session_id=False)

    producer = AckingProducer(
        producer_config(
            settings.broker,
            **{
                "client.id": "eventpulse-gateway",
                "linger.ms": gw.linger_ms,
                "message.timeout.ms": int(max(gw.ack_timeout_s, 1.0) * 1000),
            },
        ),
        settings.broker.events_topic,
        gw.max_queued_events,
        on_latency=metrics.observe_produce,
    )
    registry = SchemaRegistry()
    validator = EventValidator(settings.events, registry if settings.schemas.validate_events else None)
    return GatewayServices(
        settings=settings,
        parser=SubmittedEventParser(validator),
        keys=KeyCache(warehouse_client, gw.key_refresh_s, gw.key_max_stale_s),
        limiter=build_limiter(settings, redis, metrics),
        producer=producer,
        dead_letters=DeadLetterWriter(warehouse_client, gw.dead_letter_flush_s, gw.dead_letter_queue),
        recent_ids=build_recent_ids(settings, redis, metrics),
        readiness=ReadinessProbe(lambda: admin_client(settings.broker), warehouse_client),
        stream=StreamHub(reader_client, gw.stream_poll_s, gw.stream_rows, gw.stream_queue),
        query=QueryService(
            reader_client,
            settings.access,
            cache=ResultCache(
                redis,
                prefix=settings.redis.key_prefix,
                ttl_s=gw.query_cache_ttl_s,
                version_s=gw.query_cache_version_s,
                entries=gw.query_cache_entries,
                retry_s=settings.redis.retry_s,
                metrics=metrics,
            ),
            limiter=build_query_limiter(settings, redis, metrics),
            rate_per_s=gw.query_rate_per_s,
            burst=gw.query_burst,
            metrics=metrics,
            window_lengths=[w for w in settings.stream.window_seconds],
        ),
        webhook_sources=SourceCache(
            warehouse_client,
            lambda: secret_box(settings),
            settings.webhooks.refresh_s,
            settings.webhooks.max_stale_s,
        ),
        replays=ReplayGuard(redis, prefix=settings.redis.key_prefix, retry_s=settings.redis.retry_s, metrics=metrics),
        schemas=SchemaMirror(registry, warehouse_client, settings.schemas.refresh_s),
        warehouse_client=warehouse_client,
        metrics=metrics,
        redis=redis,
    )
