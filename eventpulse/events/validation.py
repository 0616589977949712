"""Validation of incoming events, shared by the gateway and the dataflow.

One `EventValidator` per process; it is cheap to call per event (orjson decoding, msgspec type
checks) and never raises on bad input: it returns a `Rejection` with a reason and the field.

The fields, their types and limits are `eventpulse.events.contract`'s; this module turns them
into checks with reasons and details. The rules that the fast paths (`eventpulse.events.submitted`,
`eventpulse.events.wire_batch`) screen for are implemented here once: `control_character` (names
and ids), `decode_rejection` (JSON too deep to read). A fast path only *accepts* what it is sure of;
everything else comes here, so reasons and details have one source.
"""

import contextlib
import copy
import functools
import math
import operator
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeGuard

import msgspec
import orjson
import uuid_utils

from eventpulse.config.events import EventLimits
from eventpulse.events import contract
from eventpulse.events.contract import CONTROL_CHARACTERS, Kind
from eventpulse.events.model import ValidEvent
from eventpulse.events.rejections import Rejection, RejectReason

if TYPE_CHECKING:
    from eventpulse.schemas.registry import SchemaRegistry

_PYTHON_TYPES: dict[Kind, Any] = {
    Kind.INTEGER: int,
    Kind.NUMBER: float,
    Kind.STRING: str,
    Kind.BOOLEAN: bool,
    Kind.OBJECT: dict[str, Any],
    Kind.NULL: None,
}


def _envelope_field(field: contract.Field) -> tuple[Any, ...]:
    """A msgspec field for ``field``: its JSON types, strictly; absent means its default."""
    kind = functools.reduce(operator.or_, [_PYTHON_TYPES[k] for k in field.kinds])
    if field.required and field.optional_when is None:
        return (field.key, kind)
    return (field.key, kind, {} if Kind.OBJECT in field.kinds else field.default)


_Envelope: Any = msgspec.defstruct("_Envelope", [_envelope_field(f) for f in contract.ENVELOPE])
"""The fields every event must or may carry (`contract.ENVELOPE`); anything else is kept as ``extra``.
A missing ``timestamp`` is decided by `EventValidator._event_time` (it may be allowed)."""

_KNOWN_FIELDS = contract.KNOWN_FIELDS
_TIMESTAMP_SHAPE = re.compile(contract.TIMESTAMP.pattern or "")
_TIMESTAMP_TEXT_CHARS = contract.limit(contract.TIMESTAMP.max_chars)
_TIMESTAMP_LOW = contract.limit(contract.TIMESTAMP.minimum)
_LATENCY_LOW = contract.limit(contract.LATENCY_MS.minimum)
_VERSION_LOW = contract.limit(contract.SCHEMA_VERSION_FIELD.minimum)
_VERSION_HIGH = contract.limit(contract.SCHEMA_VERSION_FIELD.maximum)
_RECEIVED_AT_LOW = contract.limit(contract.RECEIVED_AT.minimum)
_RECEIVED_AT_HIGH = contract.limit(contract.RECEIVED_AT.below)

_CONTROL_DETAIL = "must not contain control characters ({})".format(
    ", ".join(f"U+{low:04X}-U+{high:04X}" for low, high in contract.CONTROL_RANGES)
)
_MISSING = re.compile(r"missing required field `(?P<field>[^`]+)`")
_AT_PATH = re.compile(r" - at `\$\.(?P<field>[^`\[]+)")


def control_character(name: str, value: str) -> Rejection | None:
    """Why ``value`` (the field ``name``) is refused for holding a control character, or None.

    The one declaration of the rule (`CONTROL_CHARACTERS`); fast paths screen with
    ``str.isprintable`` and send any name that is not printable here.
    """
    found = CONTROL_CHARACTERS.search(value)
    if found is None:
        return None
    at, char = found.start(), ord(found.group())
    return Rejection(RejectReason.INVALID_VALUE, name, f"{name} {_CONTROL_DETAIL}: U+{char:04X} at position {at}")


_ASCII_CONTROLS = bytes(c for low, high in contract.CONTROL_RANGES for c in range(low, min(high + 1, 0x80)))


def holds_control_character(text: str) -> bool:
    """Whether ``text`` holds a `CONTROL_CHARACTERS` character: the same rule, fast on long ASCII text.

    Fast paths join many names and ask once. ASCII text (``isascii`` is a flag check) is encoded
    and its C0 and DEL bytes deleted in one C pass (~0.5 ns a character, against ~2.5 for
    ``str.isprintable`` and ~6 for the regular expression); other text asks the expression.
    """
    if text.isascii():
        raw = text.encode()
        return len(raw.translate(None, _ASCII_CONTROLS)) != len(raw)
    return CONTROL_CHARACTERS.search(text) is not None


def key_tenant(key: bytes | None) -> str | None:
    """The tenant a topic message's key names: the text before the first ``:`` of a ``TENANT:USER`` key.

    The gateway keys every message ``tenant:user_id``. A missing key, one without ``:``, one that
    starts with ``:`` or is not UTF-8 names no tenant.
    """
    if not key:
        return None
    head, colon, _ = key.partition(b":")
    if not colon or not head:
        return None
    try:
        return head.decode()
    except UnicodeDecodeError:
        return None


def message_tenant(key: bytes | None, body_tenant: Any) -> str | Rejection:
    """The tenant of a message written to the topic, by whoever wrote it: the key is authoritative.

    * A key ``TENANT:USER`` names the tenant; a body ``tenant`` (null means absent) must agree with it,
      i.e. the key must begin with ``<body tenant>:`` (so a tenant holding ``:`` can be named in the
      body), else the message is refused as ``tenant_mismatch``.
    * A key that names no tenant (none, or without ``:``) leaves the body's ``tenant`` to name it.
    * Neither: ``missing_tenant``.

    The same rule files dead letters (`EventValidator.dead_letter_tenant`), and the fast path asks
    this function too (`eventpulse.events.wire_batch`).
    """
    named = key_tenant(key)
    if body_tenant is None:
        if named is None:
            return Rejection(RejectReason.MISSING_TENANT, "tenant", "message carries no tenant (in its key or body)")
        return named
    if named is None:
        if isinstance(body_tenant, str) and body_tenant:
            return body_tenant
        return Rejection(RejectReason.MISSING_TENANT, "tenant", "message carries no tenant (in its key or body)")
    if isinstance(body_tenant, str) and key is not None and key.startswith(body_tenant.encode() + b":"):
        return body_tenant
    return Rejection(
        RejectReason.TENANT_MISMATCH,
        "tenant",
        f"the body's tenant {str(body_tenant)[:64]!r} is not the tenant the message key names ({named[:64]!r})",
    )


def plausible_receive_time(value: Any) -> TypeGuard[int | float]:
    """Whether ``value`` may be taken as a receive time (epoch ms from 1970 to 2200, `contract.RECEIVED_AT`)."""
    return _is_number(value) and _RECEIVED_AT_LOW <= value < _RECEIVED_AT_HIGH


def decode_rejection(exc: orjson.JSONDecodeError) -> Rejection:
    """Why a JSON text orjson could not decode is refused.

    orjson refuses JSON nested deeper than 1,024 levels ("depth limit exceeded") before it reads
    the rest, so such an event is refused as too large (as ``data`` beyond ``max_data_depth`` is),
    not as malformed: the text may well be valid JSON.
    """
    message = str(exc)
    if message.startswith("depth limit exceeded"):
        return Rejection(RejectReason.FIELD_TOO_LARGE, None, f"event is nested too deep to be read ({message})")
    return Rejection(RejectReason.MALFORMED_JSON, None, message)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


class EventValidator:
    """Checks events against the explicit `EventLimits`.

    Use `parse_wire` for messages read from the topic (the tenant is the message's) and
    `parse_object` for events submitted to the gateway (the tenant comes from the API key).
    With ``schemas``, an event whose tenant and type have a registered schema is also checked
    against its latest version (`eventpulse.schemas.registry`): the fast paths check it too and hand
    the events that break it here, which alone decides the rejection.
    """

    def __init__(self, limits: EventLimits, schemas: "SchemaRegistry | None" = None) -> None:
        self._limits = limits
        self.schemas = schemas
        self._names = [(f, f.key, contract.limit(f.max_chars, limits)) for f in contract.NAMES]
        self._max_user_id = contract.limit(contract.USER_ID.max_chars, limits)
        self._max_data_keys = contract.limit(contract.DATA.max_keys, limits)
        self._max_data_depth = contract.limit(contract.DATA.max_depth, limits)

    def with_schemas(self, schemas: "SchemaRegistry | None") -> "EventValidator":
        """This validator checking against ``schemas`` instead (a shallow copy: cheap, per micro-batch)."""
        other = copy.copy(self)
        other.schemas = schemas
        return other

    @property
    def limits(self) -> EventLimits:
        """The limits this validator applies."""
        return self._limits

    def parse_wire(
        self,
        payload: bytes,
        *,
        key: bytes | None = None,
        broker_ts_ms: int | None = None,
        default_id: str | None = None,
    ) -> ValidEvent | Rejection:
        """Validate one message of the events topic: its value, its ``key`` and its broker timestamp.

        The tenant is `message_tenant`'s (the key's ``TENANT:USER``, which a body ``tenant`` must agree
        with). The receive time is the body's ``received_at`` (the gateway's), else the broker's
        timestamp (``broker_ts_ms``: when the message entered the log, so a replay judges the
        timestamp the same way), else now. ``default_id`` names an event that arrived without an id
        deterministically (for example from its topic, partition and offset) so a replay after a
        crash gives the same id.
        """
        if len(payload) > self._limits.max_event_bytes:
            return Rejection(
                RejectReason.PAYLOAD_TOO_LARGE,
                None,
                f"event is {len(payload)} bytes, the limit is {self._limits.max_event_bytes}",
            )
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            return decode_rejection(exc)
        if not isinstance(obj, dict):
            return Rejection(RejectReason.NOT_AN_OBJECT, None, f"expected a JSON object, got {type(obj).__name__}")
        tenant = message_tenant(key, obj.get("tenant"))
        if isinstance(tenant, Rejection):
            return tenant
        received_at = obj.get("received_at")
        if not plausible_receive_time(received_at):
            received_at = broker_ts_ms if plausible_receive_time(broker_ts_ms) else None
        received_at_ms = int(received_at) if received_at is not None else None
        return self.parse_object(obj, tenant=tenant, received_at_ms=received_at_ms, default_id=default_id)

    def dead_letter_tenant(self, key: bytes | None, payload: bytes | None) -> str:
        """The tenant a refused topic message is filed under: `message_tenant`'s rule, as for an event.

        The body's tenant where it agrees with the key (or the key names none), the key's where they
        disagree (``tenant_mismatch``) or the body cannot be read, "" when neither names one; cut to
        ``max_name_chars``.
        """
        body: Any = None
        if payload and len(payload) <= self._limits.max_event_bytes:
            with contextlib.suppress(orjson.JSONDecodeError):
                body = orjson.loads(payload)
        tenant = message_tenant(key, body.get("tenant") if isinstance(body, dict) else None)
        if isinstance(tenant, Rejection):
            tenant = key_tenant(key) or ""
        return tenant[: self._limits.max_name_chars]

    def parse_object(
        self,
        obj: Any,
        *,
        tenant: str,
        received_at_ms: int | None = None,
        default_id: str | None = None,
    ) -> ValidEvent | Rejection:
        """Validate one decoded event for ``tenant`` (which never comes from the body).

        Timestamps are checked against ``received_at_ms`` (now when not given), so replaying an
        old backlog does not turn valid events into rejects.
        """
        if not isinstance(obj, dict):
            return Rejection(RejectReason.NOT_AN_OBJECT, None, f"expected a JSON object, got {type(obj).__name__}")
        try:
            env = msgspec.convert(obj, _Envelope, strict=True)
        except msgspec.ValidationError as exc:
            return _rejection_from_msgspec(str(exc))
        received = received_at_ms if received_at_ms is not None else time.time_ns() // 1_000_000
        if problem := self._check_fields(env, tenant):
            return problem
        timestamp = self._event_time(env.timestamp, received)
        if isinstance(timestamp, Rejection):
            return timestamp
        data = env.data
        user = data.get("user_id", contract.USER_ID.default)
        if isinstance(user, bool) or not isinstance(user, str | int):
            return Rejection(RejectReason.WRONG_TYPE, "data.user_id", "user_id must be a string or an integer")
        user_id = str(user)
        if len(user_id) > self._max_user_id:
            return Rejection(RejectReason.FIELD_TOO_LARGE, "data.user_id", "user_id is too long")
        if not user_id.isprintable() and (problem := control_character("data.user_id", user_id)):
            return problem
        latency = data.get("latency_ms")
        if latency is not None and not _is_number(latency):
            return Rejection(RejectReason.WRONG_TYPE, "data.latency_ms", "latency_ms must be a number")
        if latency is not None and (latency < _LATENCY_LOW or not math.isfinite(latency)):
            return Rejection(RejectReason.INVALID_VALUE, "data.latency_ms", "latency_ms must be finite and >= 0")
        status = data.get("status_code")
        is_error = env.type == "error" or data.get("error") is True or (_is_number(status) and status >= 500)
        event = ValidEvent(
            tenant=tenant,
            id=env.id or default_id or str(uuid_utils.uuid7()),
            timestamp_ms=timestamp,
            type=env.type,
            source=env.source,
            user_id=user_id,
            latency_ms=float(latency) if latency is not None else None,
            is_error=is_error,
            data=data,
            extra={k: v for k, v in obj.items() if k not in _KNOWN_FIELDS},
            schema_version=env.schema_version,
            received_at_ms=received,
        )
        if self.schemas is not None and (problem := self.schemas.snapshot.check(tenant, env.type, data)):
            return problem
        return event

    def _check_fields(self, env: Any, tenant: str) -> Rejection | None:
        for field, name, most in self._names:  # `contract.NAMES`: the tenant first, then the body's
            value = tenant if field is contract.TENANT else getattr(env, name)
            if value is None:
                continue
            if field.not_blank and not value.strip():
                return Rejection(RejectReason.INVALID_VALUE, name, f"{name} must not be empty")
            if len(value) > most:
                return Rejection(RejectReason.FIELD_TOO_LARGE, name, f"{name} is longer than {most} characters")
            if field.printable and not value.isprintable() and (problem := control_character(name, value)):
                return problem
        if not _VERSION_LOW <= env.schema_version <= _VERSION_HIGH:
            return Rejection(
                RejectReason.INVALID_VALUE, "schema_version", f"schema_version must be {_VERSION_LOW}..{_VERSION_HIGH}"
            )
        if len(env.data) > self._max_data_keys:
            return Rejection(RejectReason.FIELD_TOO_LARGE, "data", f"data has more than {self._max_data_keys} keys")
        if exceeds_depth(env.data, self._max_data_depth):
            return Rejection(
                RejectReason.FIELD_TOO_LARGE, "data", f"data is nested deeper than {self._max_data_depth} levels"
            )
        return None

    def _event_time(self, timestamp: float | str | None, received_ms: int) -> int | Rejection:
        """The event time in epoch milliseconds, or why it is refused.

        Accepted: a number of epoch milliseconds, or an ISO 8601 string (normalised to milliseconds;
        one without an offset is UTC). Absent: the receive time when
        ``missing_timestamp_is_receive_time`` allows it, else refused.
        """
        if timestamp is None:
            if self._limits.missing_timestamp_is_receive_time:
                return received_ms
            return Rejection(RejectReason.MISSING_FIELD, "timestamp", "Object missing required field `timestamp`")
        if isinstance(timestamp, str):
            parsed = parse_iso_timestamp(timestamp)
            if parsed is None:
                return Rejection(
                    RejectReason.INVALID_VALUE,
                    "timestamp",
                    "timestamp must be epoch milliseconds or an ISO 8601 date-time such as "
                    f"2026-12-03T05:31:48.123Z, got {timestamp[:64]!r}",
                )
            timestamp = parsed
        problem = self._check_timestamp(timestamp, received_ms)
        return problem if problem else int(timestamp)

    def _check_timestamp(self, timestamp: float, received_ms: int) -> Rejection | None:
        if not math.isfinite(timestamp) or timestamp < _TIMESTAMP_LOW:
            return Rejection(RejectReason.INVALID_VALUE, "timestamp", "timestamp must be epoch milliseconds >= 0")
        ahead, behind = self._limits.max_future_skew_s * 1000, self._limits.max_past_age_s * 1000
        if timestamp > received_ms + ahead:
            return Rejection(
                RejectReason.TIMESTAMP_IN_FUTURE,
                "timestamp",
                f"timestamp is more than {self._limits.max_future_skew_s}s ahead of the receive time"
                + _unit_hint(timestamp, received_ms - behind, received_ms + ahead),
            )
        if timestamp < received_ms - behind:
            return Rejection(
                RejectReason.TIMESTAMP_TOO_OLD,
                "timestamp",
                f"timestamp is more than {self._limits.max_past_age_s}s before the receive time"
                + _unit_hint(timestamp, received_ms - behind, received_ms + ahead),
            )
        return None


_UNITS = (("seconds", 1000), ("microseconds", 1e-3), ("nanoseconds", 1e-6))
"""Units people send instead of milliseconds, with the factor that turns them into milliseconds."""


def _unit_hint(timestamp: float, earliest_ms: float, latest_ms: float) -> str:
    """A hint when ``timestamp`` read in another unit would lie in the allowed window."""
    for unit, to_ms in _UNITS:
        if earliest_ms <= timestamp * to_ms <= latest_ms:
            return f"; it looks like epoch {unit}: send epoch milliseconds (or an ISO 8601 string)"
    return ""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_iso_timestamp(text: str) -> int | None:
    """Epoch milliseconds of an ISO 8601 date-time (``Z`` or an offset; none means UTC), or None.

    Sub-millisecond digits are truncated, as a float timestamp's are. Only strings that hold a date
    and a time are taken, so a stray number in quotes is not read as a year.
    """
    if len(text) > _TIMESTAMP_TEXT_CHARS or _TIMESTAMP_SHAPE.search(text) is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def exceeds_depth(value: Any, levels: int) -> bool:
    """Whether the decoded JSON ``value`` nests objects/arrays more than ``levels`` deep.

    Bounded: it never descends further than ``levels``, so it is safe for any document orjson
    decodes (1,024 levels), while orjson encodes only 255, which is why deeper ``data`` is refused.
    """
    children: Iterable[Any]
    if type(value) is dict:
        children = value.values()
    elif type(value) is list:
        children = value
    else:
        return False
    if levels <= 0:
        return True
    return any(exceeds_depth(child, levels - 1) for child in children)


def _rejection_from_msgspec(message: str) -> Rejection:
    """Map msgspec's error text to a reason and a field path."""
    missing = _MISSING.search(message)
    if missing:
        return Rejection(RejectReason.MISSING_FIELD, missing["field"], message)
    at = _AT_PATH.search(message)
    return Rejection(RejectReason.WRONG_TYPE, at["field"] if at else None, message)
