"""``POST /api/events`` and ``POST /api/events/batch`` as raw ASGI handlers (the hot path).

Order of checks, cheapest first: API key (401/403), rate-limit bucket not empty (429), content
type (415), body size (413), decoding (400/413), rate-limit charge per event (429), validation
(per event), broker delivery (503 after ``ack_timeout_s``), answer (202/207/422).
Statuses and bodies are documented in `gateway.openapi` and ``gateway/README.md``.
"""

from __future__ import annotations

import time
from typing import Any

from eventpulse.events import Rejection, RejectReason, ValidEvent
from gateway.api_keys import SCOPE_INGEST, ApiKey
from gateway.asgi import BodyTooLarge, Headers, header, read_body, send_json
from gateway.auth import AuthFailure, key_from_headers
from gateway.context import request_id
from gateway.ingest import (
    JSON,
    NDJSON,
    BodyError,
    Submitted,
    check,
    decode_batch,
    decode_single,
    media_type,
    payload_text,
)
from gateway.producer import QueueFull
from gateway.rate_limit import Decision, TokenBucket
from gateway.schemas import BatchResult, ErrorBody, EventAccepted, EventError, Unavailable
from gateway.services import GatewayServices


class IngestHandlers:
    def __init__(self, services: GatewayServices) -> None:
        self.svc = services
        gw = services.settings.gateway
        self._max_event_bytes = services.settings.events.max_event_bytes
        self._max_batch_bytes = gw.max_batch_bytes
        self._max_batch_events = gw.max_batch_events
        self._ack_timeout = gw.ack_timeout_s
        self._retry_after = gw.retry_after_s

    async def _admit(self, scope: dict[str, Any], send: Any) -> tuple[ApiKey, TokenBucket] | None:
        """Authenticate and check the tenant's bucket has a token; answers 401/403/429 itself (then None)."""
        key = await self._authorize(scope, send)
        if key is None:
            return None
        bucket = self.svc.limiter.bucket(key.tenant, key.rate_per_s, key.burst)
        if not bucket.has_token():
            await self._rate_limited(send, bucket.peek(), 1)
            return None
        return key, bucket

    async def single(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        admitted = await self._admit(scope, send)
        if admitted is None:
            return
        key, bucket = admitted
        if media_type(header(scope, b"content-type")) not in (JSON, ""):
            return await self._error(send, 415, "unsupported_media_type", "send the event as application/json")
        try:
            body = await read_body(receive, self._max_event_bytes, header(scope, b"content-length"))
        except BodyTooLarge:
            return await self._error(
                send, 413, "payload_too_large", f"an event is at most {self._max_event_bytes} bytes"
            )
        submitted = decode_single(body)
        received_ms = time.time_ns() // 1_000_000
        if isinstance(submitted, BodyError):
            why = Rejection(RejectReason.MALFORMED_JSON, None, submitted.detail)
            self._dead_letter(key.tenant, 0, why, body, received_ms)
            return await self._error(send, submitted.status, submitted.error, submitted.detail)
        decision = bucket.charge(1)
        if not decision.allowed:
            return await self._rate_limited(send, decision, 1)
        outcome = await self._ingest(key.tenant, submitted, received_ms)
        if isinstance(outcome, Unavailable):
            return await self._unavailable(send, outcome)
        ids, errors, duplicates = outcome
        if errors:
            error = errors[0]
            error.index = None
            return await send_json(send, 422, ErrorBody("invalid_event", error.detail, [error]), decision.headers())
        await send_json(send, 202, EventAccepted(ids[0] or "", duplicates > 0), decision.headers())

    async def batch(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        admitted = await self._admit(scope, send)
        if admitted is None:
            return
        key, bucket = admitted
        kind = media_type(header(scope, b"content-type")) or JSON
        if kind not in (JSON, NDJSON):
            return await self._error(
                send, 415, "unsupported_media_type", "send a JSON array (application/json) or application/x-ndjson"
            )
        try:
            body = await read_body(receive, self._max_batch_bytes, header(scope, b"content-length"))
        except BodyTooLarge:
            return await self._error(
                send, 413, "payload_too_large", f"a batch is at most {self._max_batch_bytes} bytes"
            )
        received_ms = time.time_ns() // 1_000_000
        submitted = decode_batch(body, kind, self._max_batch_events)
        if isinstance(submitted, BodyError):
            if submitted.status == 400:
                why = Rejection(RejectReason.MALFORMED_JSON, None, submitted.detail)
                self._dead_letter(key.tenant, 0, why, body, received_ms)
            return await self._error(send, submitted.status, submitted.error, submitted.detail)
        count = len(submitted)
        decision = bucket.charge(count)
        if not decision.allowed:
            return await self._rate_limited(send, decision, count)
        outcome = await self._ingest(key.tenant, submitted, received_ms)
        if isinstance(outcome, Unavailable):
            return await self._unavailable(send, outcome)
        ids, errors, duplicates = outcome
        accepted = count - len(errors)
        status = 202 if not errors else (207 if accepted else 422)
        result = BatchResult(accepted, len(errors), duplicates, ids, errors)
        await send_json(send, status, result, decision.headers())

    async def _ingest(
        self, tenant: str, submitted: Submitted, received_ms: int
    ) -> tuple[list[str | None], list[EventError], int] | Unavailable:
        """Validate, dead-letter the rejects, produce the rest and wait for the broker's acks."""
        svc = self.svc
        checked = check(submitted, svc.parser, tenant, received_ms, self._max_event_bytes)
        ids: list[str | None] = [None] * len(submitted)
        errors: list[EventError] = []
        for index, why, sent in checked.rejected:
            errors.append(EventError(why.reason.value, why.field, why.detail, index))
            svc.metrics.events_rejected[why.reason.value] += 1
            self._dead_letter(tenant, index, why, sent, received_ms)
        recent = svc.recent_ids
        to_send: list[ValidEvent] = []
        messages: list[tuple[bytes, bytes]] = []
        remember: list[tuple[str, int]] = []
        sent_now: set[tuple[str, int]] = set()
        duplicates = 0
        objects = submitted.objects
        for index, event, wire in checked.valid:
            ids[index] = event.id
            if "id" in objects[index]:  # the client named it: a resend must not be produced twice
                dedup_key = (event.id, event.timestamp_ms)
                if dedup_key in sent_now or recent.seen(tenant, event.id, event.timestamp_ms):
                    duplicates += 1
                    continue
                sent_now.add(dedup_key)
                remember.append(dedup_key)
            to_send.append(event)
            messages.append((event.partition_key(), wire))
        if messages:
            try:
                report = await svc.producer.deliver(messages, self._ack_timeout)
            except QueueFull as exc:
                svc.metrics.requests_shed += 1
                return Unavailable(
                    "overloaded",
                    f"too many events waiting for the broker ({exc})",
                    self._retry_after,
                    [e.id for e in to_send],
                )
            svc.metrics.observe_produce(report.latency_s)
            if not report.ok:
                svc.metrics.produce_failures += 1
                svc.metrics.requests_shed += 1
                failed = set(report.failed)
                not_accepted = [to_send[i].id for i in sorted(failed)]
                accepted = [e.id for i, e in enumerate(to_send) if i not in failed]
                detail = f"the broker did not acknowledge {len(failed)} event(s): {report.error}"
                return Unavailable("broker_unavailable", detail, self._retry_after, not_accepted, accepted)
            recent.remember(tenant, remember)
        svc.metrics.events_accepted += len(messages)
        svc.metrics.events_duplicate += duplicates
        return ids, errors, duplicates

    async def _authorize(self, scope: dict[str, Any], send: Any) -> ApiKey | None:
        result = self.svc.keys.authenticate(key_from_headers(scope["headers"]), SCOPE_INGEST)
        if isinstance(result, AuthFailure):
            await auth_failure(send, result, self._retry_after)
            return None
        return result

    def _dead_letter(self, tenant: str, index: int, why: Rejection, sent: Any, received_ms: int) -> None:
        self.svc.dead_letters.add(f"gateway:{request_id.get()}:{index}", tenant, why, payload_text(sent), received_ms)

    async def _rate_limited(self, send: Any, decision: Decision, events: int) -> None:
        self.svc.metrics.requests_rate_limited += 1
        self.svc.metrics.events_rate_limited += events
        detail = f"tenant rate limit exceeded; retry in {decision.retry_after_s} s"
        await send_json(send, 429, ErrorBody("rate_limited", detail), decision.headers())

    async def _unavailable(self, send: Any, body: Unavailable) -> None:
        await send_json(send, 503, body, [(b"retry-after", str(body.retry_after_s).encode())])

    @staticmethod
    async def _error(send: Any, status: int, error: str, detail: str, headers: Headers | None = None) -> None:
        await send_json(send, status, ErrorBody(error, detail), headers)


async def auth_failure(send: Any, failure: AuthFailure, retry_after_s: int) -> None:
    headers: Headers = []
    if failure.status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="eventpulse"'))
    elif failure.status == 503:
        headers.append((b"retry-after", str(retry_after_s).encode()))
        return await send_json(send, 503, Unavailable(failure.error, failure.detail, retry_after_s), headers)
    await send_json(send, failure.status, ErrorBody(failure.error, failure.detail), headers)
