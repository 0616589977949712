"""Alert rules, read from YAML (see eventpulse/alert_rules.example.yaml).

The rules live in a file operators (and the Alerts page) edit: ``EVENTPULSE_ORCHESTRATION_ALERT_RULES_PATH``,
by default ``<data_dir>/alert_rules.yaml``. Until that file exists the shipped example is used, so a fresh
stack alerts with the defaults and the first edit writes the file where `make run` can write.
"""

import os
import tempfile
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from eventpulse.aggregation.spec import metric_names

EXAMPLE_RULES = Path(__file__).with_name("alert_rules.example.yaml")
"""The default rules, used while the configured rules file does not exist (shipped with the package)."""

RULES_FILE_NAME = "alert_rules.yaml"


class AlertRule(BaseModel):
    """One rule over closed windows of ``window_aggregates``.

    ``kind: baseline`` (the defaults) fires for a (tenant[, type, source]) window whose ``metric`` is
    above ``factor`` x its own baseline (the event-weighted mean over the ``baseline_s`` before the
    window) *and* above the absolute ``threshold`` (a floor, so a tenant with a near-zero baseline
    does not flap), with at least ``min_events`` in the window and ``baseline_min_events`` in the
    baseline. With ``comparison: "<"`` both conditions are turned round. ``kind: threshold`` compares
    ``metric`` with ``threshold`` alone; ``kind: volume_drop`` fires when the latest closed window's
    event count is below ``threshold`` x the mean of the ``baseline_windows`` before it (a tenant that
    went silent counts as 0).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["baseline", "threshold", "volume_drop"] = "threshold"
    metric: str = "event_count"
    comparison: Literal[">", "<"] = ">"
    threshold: float
    factor: float = Field(3.0, gt=0, description="baseline: how many times the baseline the value must be.")
    baseline_s: int = Field(3600, gt=0, description="baseline: the trailing period the baseline is taken over (s).")
    baseline_min_events: int = Field(1000, ge=0, description="baseline: fewer events in the baseline = no verdict.")
    window_seconds: int = Field(60, gt=0)
    group_by: Literal["tenant", "tenant_type_source"] = "tenant"
    group: Literal["rule", "tenant"] = Field(
        "rule", description="One episode (and notification) per rule, or per rule and tenant."
    )
    lookback_s: int = Field(180, gt=0, description="Closed windows ending this recently are evaluated.")
    min_events: int = Field(0, ge=0, description="Ignore windows (or baselines) with fewer events.")
    baseline_windows: int = Field(10, gt=0)
    severity: Literal["info", "warning", "critical"] = "warning"
    tenants: list[str] = Field(default_factory=list, description="Only these tenants (empty = all).")

    def model_post_init(self, _context: object) -> None:
        if self.metric not in metric_names():
            raise ValueError(f"rule {self.name}: unknown metric {self.metric!r} (one of {', '.join(metric_names())})")

    def condition(self) -> str:
        """The rule's condition in words, for pages, notifications and the CLI."""
        if self.kind == "baseline":
            return (
                f"{self.metric} {self.comparison} {self.factor:g} x its {self.baseline_s // 60} min baseline "
                f"and {self.comparison} {self.threshold:g}"
            )
        if self.kind == "volume_drop":
            return f"event_count < {self.threshold:g} x mean of {self.baseline_windows} windows"
        return f"{self.metric} {self.comparison} {self.threshold:g}"


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[AlertRule]


def parse_rules(text: str, origin: str = "rules") -> list[AlertRule]:
    """The rules in a YAML document; raises ``ValueError`` on bad YAML, unknown keys, metrics or duplicate names."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{origin}: not valid YAML: {exc}") from exc
    rules = RuleFile.model_validate(document or {"rules": []}).rules
    names = [r.name for r in rules]
    if len(names) != len(set(names)):
        raise ValueError(f"{origin}: duplicate rule names")
    return rules


def load_rules(path: Path) -> list[AlertRule]:
    """The rules in ``path`` (the example while ``path`` does not exist); raises like `parse_rules`."""
    return parse_rules(read_rules_text(path), str(path))


def rules_path(configured: Path | None, data_dir: Path) -> Path:
    """Where the rules are kept: the configured file, else ``<data_dir>/alert_rules.yaml``."""
    return configured or data_dir / RULES_FILE_NAME


def read_rules_text(path: Path) -> str:
    """The rules file's text, or the example's while the file does not exist yet."""
    return path.read_text() if path.exists() else EXAMPLE_RULES.read_text()


def save_rules(path: Path, text: str) -> list[AlertRule]:
    """Validate ``text`` and replace the rules file with it atomically; raises ``ValueError`` (file untouched)."""
    rules = parse_rules(text, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".alert_rules.", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
    return rules
