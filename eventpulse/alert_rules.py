"""Alert rules, read from YAML (see eventpulse/alert_rules.example.yaml)."""

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from eventpulse.aggregation.spec import metric_names

EXAMPLE_RULES = Path(__file__).with_name("alert_rules.example.yaml")
"""The rules used when ``EVENTPULSE_ORCHESTRATION_ALERT_RULES_PATH`` is not set (shipped with the package)."""


class AlertRule(BaseModel):
    """One rule over closed windows of ``window_aggregates``.

    ``kind: threshold`` fires for every (tenant[, type, source]) window whose ``metric``
    compares to ``threshold`` (``>`` or ``<``); ``kind: volume_drop`` fires when the latest
    closed window's event count is below ``threshold`` x the mean of the ``baseline_windows``
    before it (a tenant that went silent counts as 0).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["threshold", "volume_drop"] = "threshold"
    metric: str = "event_count"
    comparison: Literal[">", "<"] = ">"
    threshold: float
    window_seconds: int = Field(60, gt=0)
    group_by: Literal["tenant", "tenant_type_source"] = "tenant"
    lookback_s: int = Field(600, gt=0, description="Closed windows this recent are evaluated.")
    min_events: int = Field(0, ge=0, description="Ignore windows (or baselines) with fewer events.")
    baseline_windows: int = Field(10, gt=0)
    severity: Literal["info", "warning", "critical"] = "warning"
    tenants: list[str] = Field(default_factory=list, description="Only these tenants (empty = all).")

    def model_post_init(self, _context: object) -> None:
        if self.metric not in metric_names():
            raise ValueError(f"rule {self.name}: unknown metric {self.metric!r} (one of {', '.join(metric_names())})")


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[AlertRule]


def load_rules(path: Path) -> list[AlertRule]:
    """The rules in ``path``; raises on unknown keys, metrics or duplicate names."""
    rules = RuleFile.model_validate(yaml.safe_load(path.read_text()) or {"rules": []}).rules
    names = [r.name for r in rules]
    if len(names) != len(set(names)):
        raise ValueError(f"{path}: duplicate rule names")
    return rules
