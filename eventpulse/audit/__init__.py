"""The audit log: who did what to the platform, when and from where (table ``audit_log``, migration 0070).

Every admin action goes through one `AuditWriter`, created by `create_audit_writer` (or over a client
the caller already has) and passed to the code that acts. A row is inserted synchronously, so an
action is on record before the command that performed it reports success. `read_audit` and
`follow_audit` read it back (``eventpulse audit``, the dashboards' audit page).
"""

from eventpulse.audit.model import ACTIONS, FAILURE, ROLES, SUCCESS, Action, Actor, AuditEntry, Role
from eventpulse.audit.reader import AuditQuery, follow_audit, read_audit
from eventpulse.audit.writer import AuditWriter, create_audit_writer, record_sign_in

__all__ = [
    "ACTIONS",
    "FAILURE",
    "ROLES",
    "SUCCESS",
    "Action",
    "Actor",
    "AuditEntry",
    "AuditQuery",
    "AuditWriter",
    "Role",
    "create_audit_writer",
    "follow_audit",
    "read_audit",
    "record_sign_in",
]
