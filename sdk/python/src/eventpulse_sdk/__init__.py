"""EventPulse's Python client: ``capture`` events, sent in the background in gzip batches, retried
with the same ids (at-least-once sending that the gateway and warehouse make exactly-once).

>>> from eventpulse_sdk import Client  # doctest: +SKIP
>>> with Client(api_key="ep_...", endpoint="https://events.example.com") as client:  # doctest: +SKIP
...     client.capture("user_action", "web_app", {"action": "click"}, user_id="12345")

See the package's README for the settings, the overflow policy and the delivery guarantees.
"""

from eventpulse_sdk._buffer import Stats
from eventpulse_sdk._core import ClientClosedError, QueueFullError
from eventpulse_sdk._delivery import BatchReport, Failed, Rejected
from eventpulse_sdk._version import __version__
from eventpulse_sdk.aio import AsyncClient
from eventpulse_sdk.client import Client
from eventpulse_sdk.config import ClientConfig, OverflowPolicy
from eventpulse_sdk.events import uuid7

__all__ = [
    "AsyncClient",
    "BatchReport",
    "Client",
    "ClientClosedError",
    "ClientConfig",
    "Failed",
    "OverflowPolicy",
    "QueueFullError",
    "Rejected",
    "Stats",
    "__version__",
    "uuid7",
]
