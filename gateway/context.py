"""The current request's id, visible to log records and handlers (set by `gateway.middleware`)."""

from contextvars import ContextVar

request_id: ContextVar[str] = ContextVar("request_id", default="-")
