"""``POST /api/webhooks/{source}``: a third party's JSON, signed with the source's secret, mapped to one event.

Checks, cheapest first: the source is registered and live (else 401, as for a bad signature: the
route does not tell which names exist), the body is JSON (415) within ``max_body_bytes`` (413), the
signature matches the body and its timestamp is within ``tolerance_s`` (401), the tenant's rate
limit (429), the signature was not seen before (409: a replay), the body decodes (400) and the
mapping applies (422 ``unmappable``), the event is valid (422), then it is produced and the broker's
ack awaited (503 otherwise; the signature is then forgotten, so the sender's resend is no replay).
Refused payloads (malformed, unmappable, invalid) are dead-lettered with their reason, under an id
made from the delivery id (or the body's hash), so a sender retrying one refused delivery leaves one
row. The tenant is the source's, never anything the request says.

Exactly once: the event's id comes from the mapping's ``id`` or the ``X-EventPulse-Delivery`` header,
namespaced by the source; a retry of a delivery (re-signed, so no replay) within
``EVENTPULSE_GATEWAY_RECENT_IDS_TTL_S`` is answered ``duplicate: true`` without producing it again, and
the warehouse deduplicates (id, timestamp) beyond that when the mapping names the timestamp too.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from eventpulse.events import Rejection
from eventpulse.events.validation import decode_rejection
from eventpulse.webhooks import signature
from gateway.asgi import BodyTooLarge, ClientDisconnected, header, read_body
from gateway.body_decoding import JSON, check_one, media_type
from gateway.handlers import IngestHandlers
from gateway.producer import QueueFull
from gateway.routes.health import json_response
from gateway.schemas import ErrorBody, EventAccepted, EventError, Unavailable
from gateway.webhook_sources import ReplayGuard, SourceCache

_SIGNATURE = signature.HEADER.lower().encode()
_DELIVERY = signature.DELIVERY_HEADER.lower().encode()
_UNKNOWN = ErrorBody("invalid_signature", "no live webhook source of that name, or the signature does not match")
_MAX_DELIVERY_ID = 128


class WebhookIntake:
    """The route's handler; shares the ingest path's parser, producer, id memory and dead letters."""

    def __init__(self, ingest: IngestHandlers, sources: SourceCache, replays: ReplayGuard) -> None:
        self.ingest = ingest
        self.svc = ingest.svc
        self.sources = sources
        self.replays = replays
        hooks = self.svc.settings.webhooks
        self._tolerance = hooks.tolerance_s
        self._max_body = hooks.max_body_bytes
        self._max_event_bytes = self.svc.settings.events.max_event_bytes
        self._ack_timeout = self.svc.settings.gateway.ack_timeout_s
        self._retry_after = self.svc.settings.gateway.retry_after_s

    async def handle(self, request: Request) -> Response:
        if not self.sources.fresh:
            detail = "webhook sources cannot be verified right now; retry later"
            return self._unavailable(Unavailable("webhooks_unavailable", detail, self._retry_after))
        scope: dict[str, Any] = dict(request.scope)
        found = self.sources.get(request.path_params["source"])
        if found is None:
            return json_response(_UNKNOWN, 401)
        kind = media_type(header(scope, b"content-type"))
        if kind and kind != JSON and not kind.endswith("+json"):
            return json_response(ErrorBody("unsupported_media_type", "a webhook body is application/json"), 415)
        if header(scope, b"content-encoding") not in (None, b"identity"):
            return json_response(ErrorBody("unsupported_content_encoding", "send the webhook body uncompressed"), 415)
        try:
            body = await read_body(request.receive, self._max_body, header(scope, b"content-length"))
        except BodyTooLarge:
            return json_response(
                ErrorBody("payload_too_large", f"a webhook body is at most {self._max_body} bytes"), 413
            )
        except ClientDisconnected:
            return Response(status_code=499)
        now = time.time()
        signed = header(scope, _SIGNATURE)
        checked = signature.verify(
            signed.decode("latin-1") if signed else None, body, found.secret, now, self._tolerance
        )
        if isinstance(checked, signature.Refused):
            return json_response(ErrorBody(checked.error, checked.detail), 401)
        tenant = found.tenant
        bucket = self.svc.limiter.bucket(tenant)
        if not await bucket.admit(1):
            decision = bucket.refusal(1)
            headers = {name.decode(): value.decode() for name, value in decision.headers()}
            self.svc.metrics.requests_rate_limited += 1
            return json_response(ErrorBody("rate_limited", "tenant rate limit exceeded"), 429, headers)
        ttl = checked.timestamp_s + self._tolerance - now + 1  # until the signature is stale anyway
        if not await self.replays.claim(found.source, checked.signature, ttl):
            detail = "this signature was already delivered; a retry is signed anew"
            return json_response(ErrorBody("replayed_delivery", detail), 409)
        outcome = await self._deliver(found.source, tenant, found.mapping, body, scope, checked.timestamp_s)
        if isinstance(outcome, Unavailable):
            await self.replays.release(found.source, checked.signature)
            return self._unavailable(outcome)
        return outcome

    async def _deliver(
        self, source: str, tenant: str, mapping: Any, body: bytes, scope: dict[str, Any], signed_at_s: int
    ) -> Response | Unavailable:
        received_ms = time.time_ns() // 1_000_000
        delivery = _delivery_id(header(scope, _DELIVERY))
        letter_id = f"webhook:{source}:{delivery or hashlib.sha256(body).hexdigest()[:32]}"
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            why = decode_rejection(exc)
            self._dead_letter(letter_id, tenant, why, body, received_ms)
            return json_response(ErrorBody(why.reason.value, f"the body is not valid JSON: {exc}"), 400)
        doc = mapping.apply(payload, source=source, delivery_id=delivery, signed_at_s=signed_at_s)
        if isinstance(doc, Rejection):
            self._dead_letter(letter_id, tenant, doc, body, received_ms)
            return _refused("unmappable", doc)
        checked = check_one(doc, self.svc.parser, tenant, received_ms, self._max_event_bytes)
        if isinstance(checked, Rejection):
            self._dead_letter(letter_id, tenant, checked, body, received_ms)
            return _refused("invalid_event", checked)
        event, wire = checked
        recent = self.svc.recent_ids
        named = "id" in doc
        dedup = [(event.id, 0)]  # by id alone: a re-signed retry may carry another signed timestamp
        if named and await recent.seen_among(tenant, dedup):
            self.svc.metrics.events_duplicate += 1
            return json_response(EventAccepted(event.id, True), 202)
        try:
            failure = await self.svc.producer.deliver_one(event.partition_key(), wire, self._ack_timeout)
        except QueueFull as exc:
            self.svc.metrics.requests_shed += 1
            return Unavailable("overloaded", f"too many events waiting for the broker ({exc})", self._retry_after)
        if failure is not None:
            self.svc.metrics.produce_failures += 1
            detail = f"the broker did not acknowledge the event: {failure.error}"
            return Unavailable("broker_unavailable", detail, self._retry_after, [event.id])
        if named:
            await recent.add(tenant, dedup)
        self.svc.metrics.events_accepted += 1
        return json_response(EventAccepted(event.id, False), 202)

    def _dead_letter(self, row_id: str, tenant: str, why: Rejection, body: bytes, received_ms: int) -> None:
        self.svc.metrics.events_rejected[why.reason.value] += 1
        self.svc.dead_letters.add(row_id, tenant, why, body, received_ms)

    def _unavailable(self, body: Unavailable) -> Response:
        return json_response(body, 503, {"Retry-After": str(body.retry_after_s)})


def _delivery_id(value: bytes | None) -> str | None:
    """The sender's delivery id, if it is a sane one (printable ASCII, at most 128 characters)."""
    if value is None or not 0 < len(value) <= _MAX_DELIVERY_ID or not all(33 <= c < 127 for c in value):
        return None
    return value.decode("ascii")


def _refused(error: str, why: Rejection) -> Response:
    problem = EventError(why.reason.value, why.field, why.detail)
    return json_response(ErrorBody(error, why.detail, [problem]), 422)
