"""The event model: what an event is, how it is validated, and how it travels on the topic."""

from eventpulse.events.model import RAW_EVENT_COLUMNS, ValidEvent
from eventpulse.events.rejections import Rejection, RejectReason
from eventpulse.events.validation import EventValidator

__all__ = ["RAW_EVENT_COLUMNS", "EventValidator", "RejectReason", "Rejection", "ValidEvent"]
