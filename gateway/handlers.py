"""``POST /api/events`` and ``POST /api/events/batch`` as raw ASGI handlers (the hot path).

Order of checks, cheapest first: API key (401/403), rate limit (429), content type and coding (415),
body size (413; a single event too large is counted and dead-lettered as a batch's is), decompression
of a ``Content-Encoding: gzip | zstd | deflate`` body (413 past the byte limit or the ratio bound, 400
when corrupt; both dead-lettered, see `gateway.content_encoding`), decoding
(400/413; a JSON array too deep for orjson is split, and only its too deep members are refused),
validation (per event), broker delivery (503 after ``ack_timeout_s``), answer (202/207/422). A
single event is charged its token before its body is read; a batch is first checked for a token,
then charged one per decoded event. A client that goes away before its body arrived gets nothing
(counted as 499).
Statuses and bodies are documented in `gateway.openapi` and ``gateway/README.md``.

The handlers are `gateway.middleware.RequestContext`'s hot routes: they get the ``X-Request-ID``
header to send and return the status they answered. ``single`` is written out in one piece: at one
core its cost is the gateway's rate for single events (see ``gateway/README.md``).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from eventpulse.api_keys import SCOPE_INGEST
from eventpulse.events import Rejection, RejectReason, ValidEvent
from eventpulse.events.validation import decode_rejection
from gateway.asgi import BodyTooLarge, ClientDisconnected, Headers, header, read_body, send_json
from gateway.auth import AuthFailure, key_from_headers
from gateway.body_decoding import (
    JSON,
    NDJSON,
    BodyError,
    Submitted,
    check,
    check_one,
    decode_batch,
    media_type,
    payload_text,
)
from gateway.content_encoding import ACCEPT_ENCODING, EncodingRefused, coding_of, decompress
from gateway.context import request_id
from gateway.producer import DeliveryReport, QueueFull
from gateway.rate_limit import Bucket, Decision
from gateway.routes.table import EVENTS, EVENTS_BATCH
from gateway.schemas import BatchResult, ErrorBody, EventAccepted, EventError, Unavailable
from gateway.services import GatewayServices

Rid = tuple[bytes, bytes]  # the X-Request-ID header to answer with
CLIENT_GONE = 499  # nginx's "client closed request": nothing was answered (counted and logged as such)
_JSON_BYTES = JSON.encode()
_NOT_ALLOWED = ErrorBody("method_not_allowed", "use POST")


class IngestHandlers:
    def __init__(self, services: GatewayServices) -> None:
        self.svc = services
        gw = services.settings.gateway
        self._max_event_bytes = services.settings.events.max_event_bytes
        self._max_batch_bytes = gw.max_batch_bytes
        self._max_batch_events = gw.max_batch_events
        self._ack_timeout = gw.ack_timeout_s
        self._retry_after = gw.retry_after_s
        self._limit_headers_always = gw.rate_limit_headers == "always"
        self._max_ratio = gw.max_decompression_ratio

    def routes(self) -> dict[str, Any]:
        """The hot routes, by path, for `gateway.middleware.RequestContext`."""
        return {EVENTS.path: self.single, EVENTS_BATCH.path: self.batch}

    async def single(self, scope: dict[str, Any], receive: Any, send: Any, rid: Rid) -> int:
        if scope["method"] != "POST":
            return await send_json(send, 405, _NOT_ALLOWED, [(b"allow", b"POST"), rid])
        svc = self.svc
        content_type = content_length = content_encoding = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                content_length = value
            elif name == b"content-encoding":
                content_encoding = value
        key = svc.keys.authenticate(key_from_headers(scope["headers"]), SCOPE_INGEST)
        if isinstance(key, AuthFailure):
            return await auth_failure(send, key, self._retry_after, rid)
        tenant = key.tenant
        bucket = svc.limiter.bucket(tenant, key.rate_per_s, key.burst)
        if not await bucket.admit(1):
            return await self._rate_limited(send, bucket.refusal(1), 1, rid)
        if content_type is not None and content_type != _JSON_BYTES and media_type(content_type) != JSON:
            return await self._error(send, 415, "unsupported_media_type", "send the event as application/json", rid)
        try:
            coding = coding_of(content_encoding)
        except EncodingRefused as exc:
            return await self._encoding_refused(send, exc, rid)
        limit = self._max_event_bytes
        try:
            body = await read_body(receive, limit, content_length, keep_prefix=True)
        except BodyTooLarge as exc:  # an event like a batch's too large one: counted and dead-lettered
            size = f"{exc.size} bytes" if exc.declared else f"more than {limit} bytes"
            why = Rejection(RejectReason.PAYLOAD_TOO_LARGE, None, f"event is {size}, the limit is {limit}")
            self._reject(tenant, 0, why, exc.prefix, time.time_ns() // 1_000_000)
            return await self._error(send, 413, "payload_too_large", f"an event is at most {limit} bytes", rid)
        except ClientDisconnected:
            return CLIENT_GONE
        received_ms = time.time_ns() // 1_000_000
        if coding is not None:
            try:
                body = decompress(body, coding, limit, self._max_ratio)
            except EncodingRefused as exc:
                self._reject(tenant, 0, _rejection(exc), exc.prefix or body, received_ms)
                return await self._encoding_refused(send, exc, rid)
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            why = decode_rejection(exc)
            self._reject(tenant, 0, why, body, received_ms)
            if why.reason is RejectReason.MALFORMED_JSON:
                detail = f"body is not valid JSON: {exc}"
                return await self._error(send, 400, RejectReason.MALFORMED_JSON.value, detail, rid)
            return await self._invalid(send, why, bucket, rid)
        checked = check_one(obj, svc.parser, tenant, received_ms, limit)
        if isinstance(checked, Rejection):
            self._reject(tenant, 0, checked, obj, received_ms)
            return await self._invalid(send, checked, bucket, rid)
        event, wire = checked
        client_named = "id" in obj  # a resend of an event the client named must not be produced twice
        if client_named and await svc.recent_ids.seen_among(tenant, [(event.id, event.timestamp_ms)]):
            svc.metrics.events_duplicate += 1
            return await send_json(send, 202, EventAccepted(event.id, True), self._headers(bucket, rid))
        try:
            failure = await svc.producer.deliver_one(event.partition_key(), wire, self._ack_timeout)
        except QueueFull as exc:
            return await self._unavailable(send, self._overloaded(exc, [event.id]), rid)
        if failure is not None:
            return await self._unavailable(send, self._not_acked(failure, [event]), rid)
        if client_named:
            await svc.recent_ids.add(tenant, [(event.id, event.timestamp_ms)])
        svc.metrics.events_accepted += 1
        return await send_json(send, 202, EventAccepted(event.id, False), self._headers(bucket, rid))

    async def batch(self, scope: dict[str, Any], receive: Any, send: Any, rid: Rid) -> int:
        if scope["method"] != "POST":
            return await send_json(send, 405, _NOT_ALLOWED, [(b"allow", b"POST"), rid])
        key = self.svc.keys.authenticate(key_from_headers(scope["headers"]), SCOPE_INGEST)
        if isinstance(key, AuthFailure):
            return await auth_failure(send, key, self._retry_after, rid)
        bucket = self.svc.limiter.bucket(key.tenant, key.rate_per_s, key.burst)
        if not bucket.has_token():
            return await self._rate_limited(send, bucket.refusal(1), 1, rid)
        kind = media_type(header(scope, b"content-type")) or JSON
        if kind not in (JSON, NDJSON):
            detail = "send a JSON array (application/json) or application/x-ndjson"
            return await self._error(send, 415, "unsupported_media_type", detail, rid)
        try:
            coding = coding_of(header(scope, b"content-encoding"))
        except EncodingRefused as exc:
            return await self._encoding_refused(send, exc, rid)
        try:
            body = await read_body(receive, self._max_batch_bytes, header(scope, b"content-length"))
        except BodyTooLarge:
            detail = f"a batch is at most {self._max_batch_bytes} bytes"
            return await self._error(send, 413, "payload_too_large", detail, rid)
        except ClientDisconnected:
            return CLIENT_GONE
        received_ms = time.time_ns() // 1_000_000
        if coding is not None:
            try:
                body = decompress(body, coding, self._max_batch_bytes, self._max_ratio)
            except EncodingRefused as exc:  # the whole body is one dead letter, as a malformed batch is
                self.dead_letter(key.tenant, 0, _rejection(exc), exc.prefix or body, received_ms)
                return await self._encoding_refused(send, exc, rid)
        submitted = decode_batch(body, kind, self._max_batch_events)
        if isinstance(submitted, BodyError):
            if submitted.status == 400:
                why = Rejection(RejectReason.MALFORMED_JSON, None, submitted.detail)
                self.dead_letter(key.tenant, 0, why, body, received_ms)
            return await self._error(send, submitted.status, submitted.error, submitted.detail, rid)
        count = len(submitted)
        if not await bucket.admit(count):
            return await self._rate_limited(send, bucket.refusal(count), count, rid)
        outcome = await self.ingest(key.tenant, submitted, received_ms)
        if isinstance(outcome, Unavailable):
            return await self._unavailable(send, outcome, rid)
        ids, errors, duplicates = outcome
        accepted = count - len(errors)
        status = 202 if not errors else (207 if accepted else 422)
        result = BatchResult(accepted, len(errors), duplicates, ids, errors)
        return await send_json(send, status, result, self._headers(bucket, rid))

    async def ingest(
        self, tenant: str, submitted: Submitted, received_ms: int
    ) -> tuple[list[str | None], list[EventError], int] | Unavailable:
        """Validate, dead-letter the rejects, produce the rest and wait for the broker's acks.

        The batch route's path, shared by the WebSocket route (`gateway.ws_ingest`)."""
        svc = self.svc
        checked = check(submitted, svc.parser, tenant, received_ms, self._max_event_bytes)
        ids: list[str | None] = [None] * len(submitted)
        errors: list[EventError] = []
        for index, why, sent in checked.rejected:
            errors.append(EventError(why.reason.value, why.field, why.detail, index))
            self._reject(tenant, index, why, sent, received_ms)
        recent = svc.recent_ids
        to_send: list[ValidEvent] = []
        messages: list[tuple[bytes, bytes]] = []
        remember: list[tuple[str, int]] = []
        sent_now: set[tuple[str, int]] = set()
        duplicates = 0
        objects = submitted.objects
        named = [(e.id, e.timestamp_ms) for i, e, _ in checked.valid if "id" in objects[i]]
        seen = await recent.seen_among(tenant, named) if named else set()  # one round trip for the batch
        for index, event, wire in checked.valid:
            ids[index] = event.id
            if "id" in objects[index]:  # the client named it: a resend must not be produced twice
                dedup_key = (event.id, event.timestamp_ms)
                if dedup_key in sent_now or dedup_key in seen:
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
                return self._overloaded(exc, [e.id for e in to_send])
            if not report.ok:
                return self._not_acked(report, to_send)
            await recent.add(tenant, remember)
        svc.metrics.events_accepted += len(messages)
        svc.metrics.events_duplicate += duplicates
        return ids, errors, duplicates

    def _headers(self, bucket: Bucket, rid: Rid) -> Headers:
        """Headers of an answer to a request the rate limit let through."""
        return [*bucket.status().headers(), rid] if self._limit_headers_always else [rid]

    def _overloaded(self, exc: QueueFull, ids: list[str]) -> Unavailable:
        self.svc.metrics.requests_shed += 1
        return Unavailable("overloaded", f"too many events waiting for the broker ({exc})", self._retry_after, ids)

    def _not_acked(self, report: DeliveryReport, sent: list[ValidEvent]) -> Unavailable:
        """503 for the events of ``sent`` the broker did not acknowledge (``report.failed`` indexes ``sent``)."""
        metrics = self.svc.metrics
        metrics.produce_failures += 1
        metrics.requests_shed += 1
        failed = set(report.failed)
        not_accepted = [sent[i].id for i in sorted(failed)]
        accepted = [e.id for i, e in enumerate(sent) if i not in failed]
        detail = f"the broker did not acknowledge {len(failed)} event(s): {report.error}"
        return Unavailable("broker_unavailable", detail, self._retry_after, not_accepted, accepted)

    def dead_letter(self, tenant: str, index: int, why: Rejection, sent: Any, received_ms: int) -> None:
        self.svc.dead_letters.add(f"gateway:{request_id.get()}:{index}", tenant, why, payload_text(sent), received_ms)

    def _reject(self, tenant: str, index: int, why: Rejection, sent: Any, received_ms: int) -> None:
        """A refused event, single or in a batch, is counted by reason and dead-lettered alike."""
        self.svc.metrics.events_rejected[why.reason.value] += 1
        self.dead_letter(tenant, index, why, sent, received_ms)

    async def _invalid(self, send: Any, why: Rejection, bucket: Bucket, rid: Rid) -> int:
        """422 for a single refused event."""
        error = EventError(why.reason.value, why.field, why.detail)
        return await send_json(send, 422, ErrorBody("invalid_event", why.detail, [error]), self._headers(bucket, rid))

    async def _rate_limited(self, send: Any, decision: Decision, events: int, rid: Rid) -> int:
        self.svc.metrics.requests_rate_limited += 1
        self.svc.metrics.events_rate_limited += events
        detail = f"tenant rate limit exceeded; retry in {decision.retry_after_s} s"
        return await send_json(send, 429, ErrorBody("rate_limited", detail), [*decision.headers(), rid])

    async def _unavailable(self, send: Any, body: Unavailable, rid: Rid) -> int:
        return await send_json(send, 503, body, [(b"retry-after", str(body.retry_after_s).encode()), rid])

    @staticmethod
    async def _error(send: Any, status: int, error: str, detail: str, rid: Rid) -> int:
        return await send_json(send, status, ErrorBody(error, detail), [rid])

    @staticmethod
    async def _encoding_refused(send: Any, exc: EncodingRefused, rid: Rid) -> int:
        headers: Headers = [ACCEPT_ENCODING, rid] if exc.status == 415 else [rid]
        return await send_json(send, exc.status, ErrorBody(exc.error, exc.detail), headers)


def _rejection(exc: EncodingRefused) -> Rejection:
    """The dead-letter reason of a body refused while decompressing: a bomb (past the size or ratio
    bound) or a stream that does not decompress, each its own reason so operators can tell them apart."""
    reason = RejectReason.BODY_TOO_LARGE_DECOMPRESSED if exc.status == 413 else RejectReason.MALFORMED_ENCODING
    return Rejection(reason, None, exc.detail)


async def auth_failure(send: Any, failure: AuthFailure, retry_after_s: int, rid: Rid) -> int:
    """Answer 401/403/503 for ``failure``."""
    headers: Headers = [rid]
    if failure.status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="eventpulse"'))
    elif failure.status == 503:
        headers.append((b"retry-after", str(retry_after_s).encode()))
        return await send_json(send, 503, Unavailable(failure.error, failure.detail, retry_after_s), headers)
    return await send_json(send, failure.status, ErrorBody(failure.error, failure.detail), headers)
