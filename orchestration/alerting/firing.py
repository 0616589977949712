"""One alert firing, as evaluated, delivered and stored in the ``alerts`` table."""

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

ALERT_COLUMNS = (
    "dedup_key",
    "fired_at",
    "rule",
    "severity",
    "tenant",
    "type",
    "metric",
    "value",
    "threshold",
    "comparison",
    "window_seconds",
    "window_start",
    "status",
    "message",
    "delivered",
    "attempts",
    "last_error",
    "delivered_at",
    "updated_at",
)


@dataclass
class Firing:
    """A rule that fired for one tenant (and type/source) and window."""

    rule: str
    severity: str
    tenant: str
    type: str
    metric: str
    value: float
    threshold: float
    comparison: str
    window_seconds: int
    window_start: datetime
    message: str
    fired_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    status: str = "firing"
    delivered: int = 0
    attempts: int = 0
    last_error: str = ""
    delivered_at: datetime | None = None
    dedup_key: str = ""
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if not self.dedup_key:
            identity = "|".join(
                (self.rule, self.tenant, self.type, str(self.window_seconds), self.window_start.isoformat())
            )
            self.dedup_key = hashlib.sha256(identity.encode()).hexdigest()[:32]

    def row(self) -> list[Any]:
        return [getattr(self, c) for c in ALERT_COLUMNS]

    def payload(self) -> dict[str, Any]:
        """The JSON body posted to webhooks."""
        body = asdict(self)
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in body.items()}
