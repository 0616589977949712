"""The client's settings: one frozen dataclass, from arguments or ``EVENTPULSE_SDK_*`` variables."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

OverflowPolicy = Literal["drop_newest", "drop_oldest", "block", "raise"]
"""What `capture` does when the queue holds ``max_queue_size`` events (see the README's "Overflow")."""

ENV_PREFIX = "EVENTPULSE_SDK_"


@dataclass(frozen=True)
class ClientConfig:
    """Settings of a `Client` or `AsyncClient`.

    Each field can come from the environment variable ``EVENTPULSE_SDK_<FIELD>`` (for example
    ``EVENTPULSE_SDK_API_KEY``, ``EVENTPULSE_SDK_BATCH_SIZE``) through `from_env`; an explicit
    argument beats the environment. Nothing is read at import time.
    """

    endpoint: str = "http://127.0.0.1:8000"
    """Base URL of the gateway; events go to ``{endpoint}/api/events/batch``."""
    api_key: str = ""
    """An API key with the ``ingest`` scope (sent as ``X-API-Key``); the tenant is the key's."""
    batch_size: int = 500
    """Most events in one request (the gateway takes up to 10,000)."""
    batch_max_bytes: int = 1_000_000
    """Most bytes of JSON in one request before compression (the gateway takes up to 5 MiB)."""
    flush_interval_s: float = 1.0
    """A partial batch is sent once its oldest event has waited this long."""
    max_queue_size: int = 10_000
    """Most events held in memory, waiting or being sent; beyond it `overflow` decides."""
    overflow: OverflowPolicy = "drop_newest"
    """``drop_newest`` (the new event is dropped, `capture` returns None), ``drop_oldest`` (the oldest
    waiting event makes room), ``block`` (`capture` waits up to ``block_timeout_s``, then drops the new
    event) or ``raise`` (`capture` raises `QueueFullError`)."""
    block_timeout_s: float = 5.0
    """How long `capture` waits for room under ``overflow="block"``."""
    gzip: bool = True
    """Send bodies with ``Content-Encoding: gzip`` (turned off by itself if the gateway answers 415)."""
    gzip_level: int = 6
    """zlib compression level, 1 (fastest) to 9 (smallest)."""
    timeout_s: float = 15.0
    """Per request; above the gateway's ``ack_timeout_s`` (10 s), after which it answers 503 itself."""
    max_retries: int | None = 10
    """Retries of one batch before its events are given up (reported as failed); None: retry forever
    (the queue then fills and `overflow` applies), 0: never retry."""
    backoff_initial_s: float = 0.2
    """The first retry waits up to this; each later one up to twice the previous bound (full jitter)."""
    backoff_max_s: float = 30.0
    """Upper bound of one backoff wait."""
    retry_after_max_s: float = 60.0
    """The most a ``Retry-After`` answer is waited for."""
    shutdown_timeout_s: float = 10.0
    """How long `close` (and the exit hook) keep sending what is queued; what is left is reported failed."""

    def __post_init__(self) -> None:
        positive = ("batch_size", "batch_max_bytes", "max_queue_size", "timeout_s", "backoff_initial_s")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("flush_interval_s", "block_timeout_s", "backoff_max_s", "retry_after_max_s", "shutdown_timeout_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.max_retries is not None and self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0 or None, got {self.max_retries!r}")
        if self.overflow not in get_args(OverflowPolicy):
            raise ValueError(f"overflow must be one of {get_args(OverflowPolicy)}, got {self.overflow!r}")
        if not 1 <= self.gzip_level <= 9:
            raise ValueError(f"gzip_level must be 1..9, got {self.gzip_level!r}")
        if not self.endpoint.startswith(("http://", "https://")):
            raise ValueError(f"endpoint must be an http:// or https:// URL, got {self.endpoint!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ClientConfig:
        """Settings from ``EVENTPULSE_SDK_*`` variables (``environ``, default `os.environ`), then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + field.name.upper())
            if raw is not None:
                values[field.name] = _parse(field.name, str(field.type), raw)
        values.update(overrides)
        return cls(**values)


def _parse(name: str, annotation: str, raw: str) -> Any:
    """An environment value as the field's type (annotations are strings here: ``from __future__``)."""
    text = raw.strip()
    if annotation == "bool":
        if text.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise ValueError(f"{ENV_PREFIX}{name.upper()} must be true or false, got {raw!r}")
        return text.lower() in ("1", "true", "yes", "on")
    if annotation == "int | None":
        return None if text.lower() in ("", "none") else int(text)
    if annotation == "int":
        return int(text)
    if annotation == "float":
        return float(text)
    return raw
