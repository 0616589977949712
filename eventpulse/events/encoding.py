"""The wire value of a validated event, as every intake writes it to the topic.

Shared by the gateway's routes and the bulk import (`eventpulse.imports`), so an event produces
the same bytes whichever way it arrived.
"""

from eventpulse.events.model import ValidEvent
from eventpulse.events.rejections import Rejection, RejectReason


def encode_checked(result: ValidEvent | Rejection, max_event_bytes: int) -> bytes | Rejection:
    """The wire value of a validated event, or why it cannot be sent (a rejection passes through)."""
    if isinstance(result, Rejection):
        return result
    try:
        wire = result.to_wire()
    except TypeError as exc:  # orjson decodes 1,024 levels of nesting but encodes only 255
        return Rejection(RejectReason.INVALID_VALUE, "data", f"event cannot be encoded as JSON: {exc}")
    if len(wire) > max_event_bytes:
        return Rejection(
            RejectReason.PAYLOAD_TOO_LARGE, None, f"event is {len(wire)} bytes, the limit is {max_event_bytes}"
        )
    return wire
