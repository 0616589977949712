"""The warehouse's three users (admin, writer, reader) and the file that keeps their passwords.

The local stack generates the file on first start (`ensure_users_file`), with random passwords
and permissions 0600, next to the chDB directory (``<chdb path>-users.json``). The warehouse
server authenticates against it; every component reads its own role's password through the
settings (`eventpulse.config.warehouse.WarehouseSettings.credentials`). Production sets the
passwords through environment variables instead and never needs the file.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

Role = Literal["admin", "writer", "reader"]
ROLES: tuple[Role, ...] = get_args(Role)
DEFAULT_USER_NAMES: dict[Role, str] = {role: f"eventpulse_{role}" for role in ROLES}


@dataclass(frozen=True)
class Credentials:
    """One warehouse user: its role, name and password."""

    role: Role
    user: str
    password: str


def users_file_for(chdb_path: Path) -> Path:
    """Where the local stack keeps the users of the chDB warehouse at ``chdb_path``."""
    chdb_path = Path(chdb_path)
    return chdb_path.with_name(chdb_path.name + "-users.json")


def generate_users() -> dict[Role, Credentials]:
    """Fresh users with random 32-byte passwords."""
    return {role: Credentials(role, DEFAULT_USER_NAMES[role], secrets.token_urlsafe(32)) for role in ROLES}


def write_users_file(path: Path, users: dict[Role, Credentials]) -> None:
    """Write ``users`` to ``path`` atomically, readable by its owner only (0600 from the start)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({c.role: {"user": c.user, "password": c.password} for c in users.values()}, indent=2)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, body.encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)  # whatever the umask did
    os.replace(tmp, path)


def read_users_file(path: Path) -> dict[Role, Credentials]:
    """The users in ``path``; raises ``ValueError`` if a role is missing or the file is malformed."""
    data = json.loads(Path(path).read_text())
    try:
        return {role: Credentials(role, str(data[role]["user"]), str(data[role]["password"])) for role in ROLES}
    except (KeyError, TypeError):
        raise ValueError(f"{path}: expected the users {', '.join(ROLES)} with 'user' and 'password'") from None


def ensure_users_file(path: Path) -> dict[Role, Credentials]:
    """The users in ``path``, generated and written first if the file does not exist.

    Two processes starting at once may both generate; ``O_EXCL`` lets exactly one win and the
    other reads the winner's file.
    """
    path = Path(path)
    if not path.exists():
        users = generate_users()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path.with_name(path.name + ".lock"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process is writing it
        else:
            os.close(fd)
            try:
                if not path.exists():
                    write_users_file(path, users)
            finally:
                os.unlink(path.with_name(path.name + ".lock"))
    for _ in range(100):
        if path.exists():
            return read_users_file(path)
        time.sleep(0.05)
    raise FileNotFoundError(f"{path} was not written")


def rotate_users_file(path: Path, roles: tuple[Role, ...] = ROLES) -> dict[Role, Credentials]:
    """New random passwords for ``roles`` in ``path``, user names kept.

    The local warehouse server notices the changed file at the next request; components pick
    the new password up when they next start.
    """
    users = read_users_file(path)
    fresh = generate_users()
    users = {
        role: Credentials(role, users[role].user, fresh[role].password if role in roles else users[role].password)
        for role in ROLES
    }
    write_users_file(path, users)
    return users
