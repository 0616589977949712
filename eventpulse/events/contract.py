"""The event contract, declared once: every field an event may carry, its JSON types and its limits.

Everything that checks or describes an event derives from these declarations:

* the general validator (`eventpulse.events.validation`): its msgspec envelope and its checks;
* the gateway's fast path for submitted events (`eventpulse.events.submitted`);
* the dataflow's fast path for topic messages (`eventpulse.events.wire_batch`): its msgspec ``Meta``;
* the JSON Schema of the OpenAPI document (`eventpulse.events.json_schema`, used by `gateway.openapi`).

``tests/gateway/test_event_contract.py`` generates events at and over every limit and checks that
the OpenAPI document's ``Event`` schema and the validators (the general one, the gateway's parser and
the wire-batch fast path) accept and refuse the same ones, but for the rules JSON Schema cannot
state (`eventpulse.events.json_schema.UNCHECKED_RULES`), which the validators alone refuse.

A limit is either a number or the name of an `EventLimits` setting (read with `limit`), so the
declarations stay data while the operator keeps the settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from eventpulse.config.events import EventLimits
from eventpulse.events.model import SCHEMA_VERSION


class Kind(StrEnum):
    """A JSON type, with JSON Schema's name. ``NULL`` on an optional field means the same as absent."""

    STRING = "string"
    INTEGER = "integer"  # a JSON number written without a fraction or exponent (see `Field`)
    NUMBER = "number"  # integer or not
    BOOLEAN = "boolean"
    OBJECT = "object"
    NULL = "null"


Limit = int | str
"""A bound: a number, or the name of the `EventLimits` field that holds it."""


def limit(bound: Limit | None, limits: EventLimits | None = None) -> int:
    """The value of ``bound``, under ``limits`` when it names a setting (a field's missing bound raises)."""
    if isinstance(bound, int):
        return bound
    if bound is None or limits is None:
        raise ValueError(f"no bound {bound!r} to read" if bound is None else f"{bound} is a setting: pass the limits")
    return int(getattr(limits, bound))


@dataclass(frozen=True, slots=True)
class Field:
    """One field of an event. ``name`` is its path from the top of the event (``data.user_id``).

    ``kinds`` lists the JSON types taken, in the order the validator's error messages name them;
    an empty tuple takes any value. An integer is a JSON number the decoder gives as an integer
    (written without a fraction or exponent: ``1.0`` is not one, which JSON Schema cannot say).

    For strings: ``max_chars`` (code points), ``printable`` (no `CONTROL_CHARACTERS`), ``not_blank``
    (not only `WHITESPACE`), ``pattern`` (a regular expression the text must contain a match of).
    With ``digits``, ``max_chars`` bounds an integer's decimal form too (`integer_range`). For numbers: ``minimum`` and
    ``maximum`` (inclusive), ``below`` (exclusive). For ``data``: ``max_keys`` and ``max_depth``.
    """

    name: str
    kinds: tuple[Kind, ...]
    description: str
    required: bool = False
    optional_when: str | None = None  # an `EventLimits` flag that makes a required field optional
    max_chars: Limit | None = None
    printable: bool = False
    not_blank: bool = False
    pattern: str | None = None
    minimum: int | None = None
    maximum: int | None = None
    below: int | None = None
    max_keys: Limit | None = None
    max_depth: Limit | None = None
    digits: bool = False  # an integer counts its decimal form against ``max_chars``
    default: int | str | None = None  # taken when absent (an object defaults to {})
    ignored: bool = False  # in a submitted body: the gateway sets it, whatever was sent

    @property
    def key(self) -> str:
        """The field's name in its object (``user_id`` for ``data.user_id``)."""
        return self.name.rpartition(".")[2]

    def is_required(self, limits: EventLimits) -> bool:
        """Whether an event without the field (or with null) is refused as ``missing_field``."""
        return self.required and not (self.optional_when and getattr(limits, self.optional_when))

    def takes(self, limits: EventLimits) -> tuple[Kind, ...]:
        """``kinds``, with null added where the field may be absent (null means absent)."""
        optional = self.optional_when is not None and getattr(limits, self.optional_when)
        return (*self.kinds, Kind.NULL) if optional and Kind.NULL not in self.kinds else self.kinds


JSON_INTEGERS = (-(2**63), 2**64 - 1)
"""The integers the decoder (orjson) gives as integers; it decodes a wider one as a float."""


def integer_range(field: Field, limits: EventLimits) -> tuple[int, int]:
    """The integers ``field`` takes: with ``digits``, those whose decimal form (sign included) fits
    ``max_chars``; always within `JSON_INTEGERS`."""
    least, most = JSON_INTEGERS
    if field.digits:
        chars = limit(field.max_chars, limits)
        least, most = max(least, 1 - 10 ** (chars - 1)), min(most, 10**chars - 1)
    if field.minimum is not None:
        least = max(least, field.minimum)
    if field.maximum is not None:
        most = min(most, field.maximum)
    if field.below is not None:
        most = min(most, field.below - 1)
    return least, most


CONTROL_RANGES: tuple[tuple[int, int], ...] = ((0x00, 0x1F), (0x7F, 0x9F))
"""Unicode's control characters (category Cc): C0, DEL and C1. See `CONTROL_CHARACTERS`."""

CONTROL_CLASS = "".join(f"\\u{low:04x}-\\u{high:04x}" for low, high in CONTROL_RANGES)
"""`CONTROL_RANGES` as the inside of a character class, written the same in Python and ECMA-262."""

CONTROL_CHARACTERS = re.compile(f"[{CONTROL_CLASS}]")
"""Characters refused in ``type``, ``source``, ``id``, tenant and ``data.user_id``: Unicode's
control characters (category Cc): C0 (U+0000-U+001F), DEL (U+007F) and C1 (U+0080-U+009F).

They have no printed form, so a name holding one looks like another name in every dashboard, and
they break the places names travel to: a NUL ends a C string (librdkafka headers, ClickHouse
clients, logs), CR/LF split log lines and CSV rows, ESC and C1's CSI (U+009B) drive terminals.
DEL and C1 are refused with C0 because they are the same category, with the same harms.
A fast path may accept a name without asking only when ``name.isprintable()`` (which is False for
every Cc character, and for some others that then take the exact path).
"""

WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""What ``str.strip()`` removes (``str.isspace``; a test checks every code point): a name of only
these is blank. Spelled out because ECMA-262's ``\\s`` (JSON Schema's dialect) is another set."""

WHITESPACE_CLASS = "".join(f"\\u{ord(char):04x}" for char in WHITESPACE)

MAX_SCHEMA_VERSION = 65_535  # the events table stores it as UInt16
LATEST_RECEIVED_AT_MS = 7_258_118_400_000
"""2200-01-01: a message's ``received_at`` beyond it (or below 0) is ignored and now used instead."""

MAX_TIMESTAMP_TEXT_CHARS = 64
"""Longest ISO 8601 ``timestamp`` read; a longer one is refused unread."""

TIMESTAMP_SHAPE = "[ Tt\u1e97\ufb05\ufb06]"
"""What an ISO 8601 ``timestamp`` must hold, so a stray number in quotes is not read as a year: a space
or a character whose upper case holds a ``T`` (the date-time separator may be any one character;
``tests/eventpulse/events/test_contract.py`` checks the set against ``str.upper``)."""

DATA_VALUE_KINDS = (Kind.STRING, Kind.NUMBER, Kind.BOOLEAN, Kind.NULL)
"""The JSON types that nest nothing (what ``max_depth`` counts past)."""

# --- The event as submitted (and, with `TENANT` and `RECEIVED_AT` set, as written to the topic) ---

TYPE = Field(
    "type",
    (Kind.STRING,),
    "What happened.",
    required=True,
    max_chars="max_name_chars",
    printable=True,
    not_blank=True,
)
SOURCE = Field(
    "source",
    (Kind.STRING,),
    "What sent it.",
    required=True,
    max_chars="max_name_chars",
    printable=True,
    not_blank=True,
)
TIMESTAMP = Field(
    "timestamp",
    (Kind.INTEGER, Kind.NUMBER, Kind.STRING, Kind.NULL),
    "Event time: epoch milliseconds or an ISO 8601 date-time (normalised to milliseconds; no offset means UTC), "
    "within `max_past_age_s` before and `max_future_skew_s` after the receive time. A number that reads as "
    "seconds, microseconds or nanoseconds is refused with a hint.",
    required=True,
    optional_when="missing_timestamp_is_receive_time",
    max_chars=MAX_TIMESTAMP_TEXT_CHARS,
    pattern=TIMESTAMP_SHAPE,
    minimum=0,
)
DATA = Field(
    "data",
    (Kind.OBJECT,),
    "Anything else about the event; the fields below have a meaning.",
    max_keys="max_data_keys",
    max_depth="max_data_depth",
)
ID = Field(
    "id",
    (Kind.STRING, Kind.NULL),
    "Client-chosen id (recommended): a retry must resend the same id. Generated (UUIDv7) when absent.",
    max_chars="max_id_chars",
    printable=True,
    not_blank=True,
)
SCHEMA_VERSION_FIELD = Field(
    "schema_version",
    (Kind.INTEGER,),
    f"The event format's version ({SCHEMA_VERSION} when absent).",
    minimum=0,
    maximum=MAX_SCHEMA_VERSION,
    default=SCHEMA_VERSION,
)
TENANT = Field(
    "tenant",
    (Kind.STRING,),
    "The API key's tenant: one in a submitted body is ignored.",
    max_chars="max_name_chars",
    printable=True,
    not_blank=True,
    ignored=True,
)
RECEIVED_AT = Field(
    "received_at",
    (Kind.INTEGER,),
    "Receive time (epoch milliseconds), set by the gateway: one in a submitted body is ignored.",
    minimum=0,
    below=LATEST_RECEIVED_AT_MS,
    ignored=True,
)

# --- Fields of ``data`` that the pipeline reads ---

USER_ID = Field(
    "data.user_id",
    (Kind.STRING, Kind.INTEGER),
    "Partition key with the tenant; an integer counts by its decimal form.",
    max_chars="max_name_chars",
    printable=True,
    digits=True,
    default="",
)
LATENCY_MS = Field("data.latency_ms", (Kind.NUMBER, Kind.NULL), "Latency in milliseconds.", minimum=0)
STATUS_CODE = Field("data.status_code", (), "A number >= 500 marks the event an error.")
ERROR = Field("data.error", (), "`true` marks the event an error.")

ENVELOPE: tuple[Field, ...] = (TYPE, SOURCE, TIMESTAMP, DATA, ID, SCHEMA_VERSION_FIELD)
"""The fields the validator reads from an event's body, in its envelope's order; any other field is kept."""

SET_BY_GATEWAY: tuple[Field, ...] = (TENANT, RECEIVED_AT)
"""Fields of the topic's message the gateway sets; in a submitted body they are ignored."""

KNOWN_FIELDS = frozenset(f.key for f in (*ENVELOPE, *SET_BY_GATEWAY))
"""The top-level fields the contract names; an event's other fields are kept as ``extra``."""

DATA_FIELDS: tuple[Field, ...] = (USER_ID, LATENCY_MS, STATUS_CODE, ERROR)

NAMES: tuple[Field, ...] = (TENANT, TYPE, SOURCE, ID)
"""The name-like strings, checked in this order: not blank, not too long, printable."""
