"""Platform users: name, role, tenant and an argon2id password hash, in the ``users`` table (migration 0071).

`add_user`, `remove_user` and `list_users` are what ``eventpulse users`` runs (each change recorded in
``audit_log``); `authenticate` checks a password and records the sign-in or the failed one.
"""

from eventpulse.users.roles import PLATFORM_ROLES, TENANT_ROLES, USER_ROLES
from eventpulse.users.store import (
    User,
    UserError,
    add_user,
    authenticate,
    ensure_admin,
    find_user,
    list_users,
    remove_user,
)

__all__ = [
    "PLATFORM_ROLES",
    "TENANT_ROLES",
    "USER_ROLES",
    "User",
    "UserError",
    "add_user",
    "authenticate",
    "ensure_admin",
    "find_user",
    "list_users",
    "remove_user",
]
