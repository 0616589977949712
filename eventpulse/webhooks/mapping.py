"""A webhook source's mapping: how a third party's JSON becomes one event.

A mapping is a small document (JSON or YAML), registered per source with ``eventpulse webhooks``::

    type: $.type                        # required
    timestamp: $.created                # unix seconds, unix milliseconds or ISO-8601 text
    user_id: $.data.object.customer
    id: $.id                            # the third party's own delivery or event id
    data:                               # more fields of the event's data
      amount: $.data.object.amount
      currency: $.data.object.currency
    keep_payload: false                 # true: the whole payload too, as data.payload

A string that starts with ``$`` is a path (`eventpulse.webhooks.paths`: RFC 9535 singular queries);
any other value is a literal (``type: payment``); ``{value: "$literal"}`` is a literal that starts with
``$``. Defaults: ``source`` is the webhook source's name; ``timestamp`` the delivery's signed
timestamp; ``id`` the ``X-EventPulse-Delivery`` header, else a new id. Given ids are namespaced by the
source (``<source>:<id>``), so two sources of a tenant never collide.

A payload is *unmappable* (`RejectReason.UNMAPPABLE`, dead-lettered) when a required field's path
names nothing, or ``type``, ``user_id`` or ``id`` is not a string or number, or the timestamp is not a
number or a date. What the event then holds is checked by the gateway's usual validation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from eventpulse.events.rejections import Rejection, RejectReason
from eventpulse.webhooks.paths import MISSING, Path, PathError, compile_path, resolve

_FIELDS = ("type", "timestamp", "user_id", "id", "source")
_KNOWN = frozenset((*_FIELDS, "data", "keep_payload"))
_MS_FROM = 100_000_000_000  # a number at or above this is milliseconds (year 5138 in seconds)


class MappingError(ValueError):
    """The mapping document is not valid (every problem, one a line)."""


@dataclass(frozen=True, slots=True)
class Value:
    """A path into the payload, or a literal."""

    path: Path | None = None
    literal: Any = None
    text: str = ""

    def get(self, payload: Any) -> Any:
        return resolve(payload, self.path) if self.path is not None else self.literal


@dataclass(frozen=True)
class Mapping:
    type: Value
    timestamp: Value | None = None
    user_id: Value | None = None
    id: Value | None = None
    source: Value | None = None
    data: dict[str, Value] = field(default_factory=dict)
    keep_payload: bool = False
    document: dict[str, Any] = field(default_factory=dict)  # as registered

    @classmethod
    def parse(cls, document: Any) -> Mapping:
        """A mapping from its document; raises `MappingError` listing every problem."""
        if not isinstance(document, dict):
            raise MappingError("a mapping is an object (type, timestamp, user_id, id, source, data, keep_payload)")
        problems = [f"unknown key {key!r}" for key in document if key not in _KNOWN]
        values: dict[str, Value] = {}
        for name in _FIELDS:
            if name in document:
                try:
                    values[name] = _value(document[name])
                except (PathError, MappingError) as exc:
                    problems.append(f"{name}: {exc}")
        if "type" not in document:
            problems.append("type is required (a path such as $.type, or a literal)")
        data = document.get("data", {})
        mapped: dict[str, Value] = {}
        if not isinstance(data, dict):
            problems.append("data: an object of field name to path or literal")
        else:
            for name, raw in data.items():
                if name == "user_id":
                    problems.append("data.user_id: map it as user_id")
                    continue
                try:
                    mapped[str(name)] = _value(raw)
                except (PathError, MappingError) as exc:
                    problems.append(f"data.{name}: {exc}")
        keep = document.get("keep_payload", False)
        if not isinstance(keep, bool):
            problems.append("keep_payload: true or false")
        if problems:
            raise MappingError("\n".join(problems))
        return cls(
            values["type"],
            values.get("timestamp"),
            values.get("user_id"),
            values.get("id"),
            values.get("source"),
            mapped,
            bool(keep),
            dict(document),
        )

    def apply(
        self, payload: Any, *, source: str, delivery_id: str | None, signed_at_s: int
    ) -> dict[str, Any] | Rejection:
        """The event ``payload`` maps to (before validation), or why it cannot be mapped."""
        kind = _name(self.type, payload, "type")
        if isinstance(kind, Rejection):
            return kind
        event: dict[str, Any] = {"type": kind}
        if self.source is not None:
            named = _name(self.source, payload, "source")
            if isinstance(named, Rejection):
                return named
            event["source"] = named
        else:
            event["source"] = source
        if self.timestamp is not None:
            stamp = _timestamp(self.timestamp, payload)
            if isinstance(stamp, Rejection):
                return stamp
            event["timestamp"] = stamp
        else:
            event["timestamp"] = signed_at_s * 1000
        given: str | None = delivery_id
        if self.id is not None:
            mapped_id = _name(self.id, payload, "id")
            if isinstance(mapped_id, Rejection):
                return mapped_id
            given = mapped_id
        if given:
            event["id"] = f"{source}:{given}"
        data: dict[str, Any] = {}
        if self.user_id is not None:
            user = _name(self.user_id, payload, "user_id")
            if isinstance(user, Rejection):
                return user
            data["user_id"] = user
        for name, value in self.data.items():
            found = value.get(payload)
            if found is not MISSING:
                data[name] = found
        if self.keep_payload:
            data["payload"] = payload
        event["data"] = data
        return event


def _value(raw: Any) -> Value:
    if isinstance(raw, str) and raw.startswith("$"):
        return Value(path=compile_path(raw), text=raw)
    if isinstance(raw, dict):
        if set(raw) != {"value"}:
            raise MappingError("an object here is a literal: {value: ...}")
        return Value(literal=raw["value"], text=repr(raw["value"]))
    if raw is None or isinstance(raw, (list, dict)):
        raise MappingError("a path ($...) or a literal string, number or boolean")
    return Value(literal=raw, text=repr(raw))


def _unmappable(name: str, detail: str) -> Rejection:
    return Rejection(RejectReason.UNMAPPABLE, name, detail)


def _name(value: Value, payload: Any, name: str) -> str | Rejection:
    found = value.get(payload)
    if found is MISSING:
        return _unmappable(name, f"{value.text} names nothing in the payload")
    if isinstance(found, bool) or not isinstance(found, (str, int, float)):
        return _unmappable(name, f"{value.text} is a {type(found).__name__}, not a string or number")
    return found if isinstance(found, str) else str(found)


def _timestamp(value: Value, payload: Any) -> int | Rejection:
    """Milliseconds since the epoch from unix seconds, unix milliseconds or ISO-8601 text."""
    found = value.get(payload)
    if found is MISSING:
        return _unmappable("timestamp", f"{value.text} names nothing in the payload")
    if isinstance(found, str):
        text = found.strip()
        try:
            found = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                return _unmappable("timestamp", f"{value.text} is {found[:64]!r}: not a number or an ISO-8601 date")
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return int(moment.timestamp() * 1000)
    if isinstance(found, bool) or not isinstance(found, (int, float)) or not math.isfinite(found):
        return _unmappable("timestamp", f"{value.text} is a {type(found).__name__}, not a time")
    return int(found) if abs(found) >= _MS_FROM else int(found * 1000)
