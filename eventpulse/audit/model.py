"""What one audit row holds: who (actor, role, source address), what (action, target, parameters), the outcome."""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

SUCCESS = "success"
FAILURE = "failure"


class Role(StrEnum):
    """The role an actor acted in (issue 14's roles, plus the platform's own processes)."""

    PLATFORM_ADMIN = "platform_admin"
    OPERATOR = "operator"
    TENANT_ADMIN = "tenant_admin"
    TENANT_ANALYST = "tenant_analyst"
    SYSTEM = "system"  # a platform process acting on its own: a Dagster sensor or schedule, the migrator
    ANONYMOUS = "anonymous"  # nobody signed in (the dashboards before sign-in exists)


class Action(StrEnum):
    """Every action the platform records. Names are ``area.verb``: ``--action area`` selects the area."""

    API_KEY_CREATE = "api_key.create"
    API_KEY_REVOKE = "api_key.revoke"
    WEBHOOK_SOURCE_CREATE = "webhook_source.create"
    WEBHOOK_SOURCE_UPDATE = "webhook_source.update"  # a new mapping or a rotated secret
    WEBHOOK_SOURCE_REVOKE = "webhook_source.revoke"
    SCHEMA_REGISTER = "schema.register"  # a new version of an event type's schema (or a refused one)
    SCHEMA_MODE_CHANGE = "schema.mode_change"  # an event type's compatibility mode
    USER_ADD = "user.add"
    USER_REMOVE = "user.remove"
    SIGN_IN = "auth.sign_in"
    SQL_QUERY = "sql.query"
    QUERY_API = "query_api.query"
    RUN_START = "dagster.run_start"
    RUN_SUCCESS = "dagster.run_success"
    RUN_FAILURE = "dagster.run_failure"
    RETENTION_RUN = "retention.run"
    ALERT_RULES_CHANGE = "alert_rules.change"
    MIGRATION_APPLY = "migration.apply"


ACTIONS: tuple[str, ...] = tuple(a.value for a in Action)
ROLES: tuple[str, ...] = tuple(r.value for r in Role)

_SECRET_NAMES = frozenset({"password", "secret", "key", "api_key", "key_hash", "token", "password_hash"})


@dataclass(frozen=True)
class Actor:
    """Who acts: a user or key name, the role they act in, their tenant ("" for all) and address."""

    name: str
    role: str
    tenant: str = ""
    source: str = ""

    @classmethod
    def local_cli(cls, command: str = "eventpulse") -> Actor:
        """The operator running the CLI on this machine with the admin credentials of the settings."""
        return cls(f"{_login()}", Role.PLATFORM_ADMIN, source=f"{command}@{socket.gethostname()}")

    @classmethod
    def system(cls, name: str, source: str = "") -> Actor:
        """A platform process acting on its own (``dagster:sensor:NAME``, ``migrator``...)."""
        return cls(name, Role.SYSTEM, source=source or socket.gethostname())


@dataclass(frozen=True)
class AuditEntry:
    """One row of ``audit_log`` (columns in `COLUMNS` order)."""

    time: datetime
    event_id: str
    actor: str
    role: str
    tenant: str
    action: str
    target: str
    parameters: dict[str, Any] = field(default_factory=dict)
    result: str = SUCCESS
    error: str = ""
    request_id: str = ""
    source: str = ""


COLUMNS: tuple[str, ...] = (
    "time",
    "event_id",
    "actor",
    "role",
    "tenant",
    "action",
    "target",
    "parameters",
    "result",
    "error",
    "request_id",
    "source",
)


def redact(parameters: dict[str, Any]) -> dict[str, Any]:
    """``parameters`` with secrets (passwords, keys, hashes) replaced: the log must never leak one."""
    return {
        name: "<redacted>" if name.lower() in _SECRET_NAMES else (redact(v) if isinstance(v, dict) else v)
        for name, v in parameters.items()
    }


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"
