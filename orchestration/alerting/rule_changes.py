"""Alert-rule changes, noticed by the alert sensor and recorded in ``audit_log``.

Rules live in a YAML file (``EVENTPULSE_ORCHESTRATION_ALERT_RULES_PATH``) that operators edit; the
sensor keeps the file's digest and the rules it last loaded in its cursor, and when the digest
changes it records one ``alert_rules.change`` row: the rules added, removed and changed, or, for a
file that no longer loads, a failure with the error (once per version of the file, not per tick:
a sensor that raises keeps no cursor, so the log itself is asked).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from eventpulse.alert_rules import AlertRule, read_rules_text
from eventpulse.audit import FAILURE, SUCCESS, Action, AuditQuery, AuditWriter, read_audit


@dataclass(frozen=True)
class RulesState:
    """What the sensor last saw: the file's digest and the rules that loaded from it."""

    digest: str = ""
    rules: dict[str, dict[str, Any]] | None = None

    @classmethod
    def from_cursor(cls, cursor: str | None) -> RulesState:
        if not cursor:
            return cls()
        data = orjson.loads(cursor)
        return cls(data.get("digest", ""), data.get("rules"))

    def to_cursor(self) -> str:
        return orjson.dumps({"digest": self.digest, "rules": self.rules}).decode()


def diff(before: dict[str, dict[str, Any]] | None, after: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Rule names added, removed and changed between two loads."""
    old = before or {}
    return {
        "added": sorted(set(after) - set(old)),
        "removed": sorted(set(old) - set(after)),
        "changed": sorted(name for name in set(old) & set(after) if old[name] != after[name]),
    }


def track_rules(
    path: Path, state: RulesState, load: Callable[[Path], list[AlertRule]], audit: AuditWriter
) -> tuple[list[AlertRule], RulesState]:
    """Load the rules; if the file changed since ``state``, record the change. Raises if the file is invalid."""
    text = read_rules_text(path).encode()  # the shipped defaults while the file does not exist
    digest = hashlib.sha256(text).hexdigest()
    if digest == state.digest and state.rules is not None:
        return load(path), state
    parameters: dict[str, Any] = {"path": str(path), "digest": digest, "previous_digest": state.digest}
    try:
        rules = load(path)
    except Exception as exc:
        if not _failure_recorded(audit, digest):
            audit.record(
                Action.ALERT_RULES_CHANGE,
                target=str(path),
                tenant="",
                parameters=parameters,
                result=FAILURE,
                error=f"invalid rules file: {exc}",
            )
        raise InvalidRules(str(exc), RulesState(digest, state.rules)) from exc
    loaded = {rule.name: rule.model_dump(mode="json") for rule in rules}
    parameters.update(diff(state.rules, loaded), rules=len(rules))
    audit.record(Action.ALERT_RULES_CHANGE, target=str(path), tenant="", parameters=parameters, result=SUCCESS)
    return rules, RulesState(digest, loaded)


def _failure_recorded(audit: AuditWriter, digest: str) -> bool:
    """Whether this broken version of the file is on record already (a raising sensor keeps no cursor)."""
    recent = read_audit(audit.client, AuditQuery(action=Action.ALERT_RULES_CHANGE, result=FAILURE, limit=20))
    return any(entry.parameters.get("digest") == digest for entry in recent)


class InvalidRules(ValueError):
    """The rules file does not load; ``state`` is the cursor to keep (the failure is recorded once)."""

    def __init__(self, message: str, state: RulesState) -> None:
        super().__init__(message)
        self.state = state
