"""The roles a person can hold, and which of them belong to one tenant."""

from eventpulse.audit.model import Role

PLATFORM_ROLES: tuple[str, ...] = (Role.PLATFORM_ADMIN.value, Role.OPERATOR.value)
"""Every tenant: the platform admin (everything), the operator (read, launch backfills, manage alerts)."""
TENANT_ROLES: tuple[str, ...] = (Role.TENANT_ADMIN.value, Role.TENANT_ANALYST.value)
"""One tenant: its admin (keys and members) and its analysts (read)."""
USER_ROLES: tuple[str, ...] = PLATFORM_ROLES + TENANT_ROLES


def check_role(role: str, tenant: str) -> None:
    """Raise ValueError unless ``role`` exists and ``tenant`` is set exactly for tenant roles."""
    if role not in USER_ROLES:
        raise ValueError(f"unknown role {role!r} (one of {', '.join(USER_ROLES)})")
    if role in TENANT_ROLES and not tenant.strip():
        raise ValueError(f"role {role} belongs to one tenant: name it")
    if role in PLATFORM_ROLES and tenant:
        raise ValueError(f"role {role} covers every tenant: do not name one")
