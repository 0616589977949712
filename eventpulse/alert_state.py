"""Alert state in the warehouse: episodes, acknowledgements, silences and the notification log.

An *episode* is one rule group (a rule, or a rule and tenant) from the evaluation it started firing to
the one it stopped: one row in ``alert_episodes`` (migration 0110), rewritten by the alert sensor only.
Acknowledgements (``alert_acks``) and silences (``alert_silences``) are written by people, through the
CLI and the Alerts page, into tables of their own, so they never race the sensor's rewrite. The sensor
(orchestration/alerting) reads them; `eventpulse alerts` and the dashboards read and write them here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

FIRING = "firing"
RESOLVED = "resolved"
ANY = ""
"""A silence's rule or tenant that matches every rule or tenant."""


def utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime (the client reads ``DateTime64(3, 'UTC')`` as naive UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Episode:
    """One row of ``alert_episodes``."""

    episode_id: str
    rule: str
    group_key: str
    tenant: str  # the group's tenant, "*" for a rule-wide group
    severity: str
    status: str
    opened_at: datetime
    last_firing_at: datetime
    resolved_at: datetime | None
    series: list[str]
    tenants: list[str]
    peak_value: float
    threshold: float
    message: str
    notifications: int = 0
    notified_at: datetime | None = None
    escalated_at: datetime | None = None
    updated_at: datetime = field(default_factory=_now)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Episode:
        values: dict[str, Any] = {k: utc(v) if isinstance(v, datetime) else v for k, v in row.items()}
        return cls(**values)

    def row(self) -> list[Any]:
        return [getattr(self, c) for c in EPISODE_COLUMNS]


EPISODE_COLUMNS = tuple(f.name for f in fields(Episode))


def new_episode_id() -> str:
    return uuid.uuid4().hex[:16]


def read_episodes(
    client: Client,
    *,
    status: str | None = None,
    since: datetime | None = None,
    ids: Sequence[str] | None = None,
    limit: int = 1000,
) -> list[Episode]:
    """Episodes (latest state of each), newest first; ``status`` filters after FINAL, not before it."""
    sql = f"""
        SELECT {", ".join(EPISODE_COLUMNS)} FROM (SELECT * FROM alert_episodes FINAL)
        WHERE ({{status:String}} = '' OR status = {{status:String}})
          AND opened_at >= {{since:DateTime64(3, 'UTC')}}
          AND (NOT {{by_id:Bool}} OR has({{ids:Array(String)}}, episode_id))
        ORDER BY opened_at DESC LIMIT {{limit:UInt32}}"""
    parameters = {
        "status": status or "",
        "since": since or datetime(1970, 1, 1, tzinfo=UTC),
        "by_id": ids is not None,
        "ids": list(ids or ()),
        "limit": limit,
    }
    return [Episode.from_row(r) for r in client.query(sql, parameters=parameters).named_results()]


def write_episodes(client: Client, episodes: Iterable[Episode]) -> None:
    rows = [e.row() for e in episodes]
    if rows:
        client.insert("alert_episodes", rows, column_names=list(EPISODE_COLUMNS))


class UnknownEpisode(LookupError):
    """No episode has that id (or id prefix)."""


def find_episode(client: Client, episode_id: str) -> Episode:
    """The episode whose id is, or starts with, ``episode_id`` (unique prefix)."""
    sql = (
        f"SELECT {', '.join(EPISODE_COLUMNS)} FROM alert_episodes FINAL "
        "WHERE startsWith(episode_id, {id:String}) LIMIT 2"
    )
    found = [Episode.from_row(r) for r in client.query(sql, parameters={"id": episode_id}).named_results()]
    if len(found) != 1 or not episode_id:
        raise UnknownEpisode(f"no single episode with id {episode_id!r}" + (" (ambiguous)" if found else ""))
    return found[0]


@dataclass(frozen=True)
class Ack:
    episode_id: str
    acked_at: datetime
    acked_by: str
    note: str


def acknowledge(client: Client, episode_id: str, by: str, note: str = "", now: datetime | None = None) -> Ack:
    """Acknowledge the episode: no more reminders or escalation for it (its resolution is still sent)."""
    episode = find_episode(client, episode_id)
    ack = Ack(episode.episode_id, now or _now(), by, note)
    client.insert(
        "alert_acks",
        [[ack.episode_id, episode.tenant, ack.acked_at, ack.acked_by, ack.note]],
        column_names=["episode_id", "tenant", "acked_at", "acked_by", "note"],
    )
    return ack


def acks(client: Client, ids: Sequence[str]) -> dict[str, Ack]:
    """The first acknowledgement of each of ``ids`` that has one."""
    if not ids:
        return {}
    sql = (
        "SELECT episode_id, min(acked_at) AS at, argMin(acked_by, acked_at), argMin(note, acked_at) FROM alert_acks "
        "WHERE has({ids:Array(String)}, episode_id) GROUP BY episode_id"
    )
    rows = client.query(sql, parameters={"ids": list(ids)}).result_rows
    return {r[0]: Ack(r[0], utc(r[1]) or _now(), r[2], r[3]) for r in rows}


@dataclass(frozen=True)
class Silence:
    """No notification for matching episodes between ``starts_at`` and ``ends_at``."""

    silence_id: str
    rule: str
    tenant: str
    starts_at: datetime
    ends_at: datetime
    created_by: str
    reason: str
    updated_at: datetime = field(default_factory=_now)

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, episode: Episode) -> bool:
        """Same rule (or any), and every tenant of the episode is the silence's tenant (or any)."""
        if self.rule not in (ANY, episode.rule):
            return False
        return self.tenant == ANY or (bool(episode.tenants) and set(episode.tenants) == {self.tenant})


SILENCE_COLUMNS = tuple(f.name for f in fields(Silence))


def add_silence(
    client: Client,
    *,
    rule: str = ANY,
    tenant: str = ANY,
    duration: timedelta,
    by: str,
    reason: str = "",
    now: datetime | None = None,
) -> Silence:
    """Silence ``rule`` (or all) for ``tenant`` (or all) from now for ``duration``."""
    if duration <= timedelta(0):
        raise ValueError("a silence lasts a positive time")
    start = now or _now()
    silence = Silence(uuid.uuid4().hex[:12], rule, tenant, start, start + duration, by, reason, start)
    client.insert(
        "alert_silences", [[getattr(silence, c) for c in SILENCE_COLUMNS]], column_names=list(SILENCE_COLUMNS)
    )
    return silence


def read_silences(client: Client, now: datetime | None = None, *, active_only: bool = True) -> list[Silence]:
    """Silences (latest state of each): the active ones at ``now``, or all, latest end first."""
    sql = f"""
        SELECT {", ".join(SILENCE_COLUMNS)} FROM (SELECT * FROM alert_silences FINAL)
        WHERE NOT {{active_only:Bool}} OR (starts_at <= {{now:DateTime64(3, 'UTC')}} AND ends_at > {{now:DateTime64(3, 'UTC')}})
        ORDER BY ends_at DESC"""
    result = client.query(sql, parameters={"active_only": active_only, "now": now or _now()})
    silences = []
    for row in result.named_results():
        values: dict[str, Any] = {k: utc(v) if isinstance(v, datetime) else v for k, v in row.items()}
        silences.append(Silence(**values))
    return silences


def end_silence(client: Client, silence_id: str, now: datetime | None = None) -> Silence:
    """End a silence now (a rewrite with ``ends_at`` = now)."""
    end = now or _now()
    found = [s for s in read_silences(client, active_only=False) if s.silence_id.startswith(silence_id)]
    if len(found) != 1 or not silence_id:
        raise LookupError(f"no single silence with id {silence_id!r}")
    ended = Silence(**{**found[0].__dict__, "ends_at": min(found[0].ends_at, end), "updated_at": end})
    client.insert("alert_silences", [[getattr(ended, c) for c in SILENCE_COLUMNS]], column_names=list(SILENCE_COLUMNS))
    return ended


def silenced_by(episode: Episode, silences: Iterable[Silence], now: datetime) -> Silence | None:
    return next((s for s in silences if s.active(now) and s.matches(episode)), None)


NOTIFICATION_COLUMNS = (
    "episode_id",
    "rule",
    "tenant",
    "kind",
    "channel",
    "destination",
    "sent_at",
    "ok",
    "attempts",
    "error",
)


def read_notifications(client: Client, episode_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """Notifications sent (or tried), newest first."""
    sql = (
        f"SELECT {', '.join(NOTIFICATION_COLUMNS)} FROM alert_notifications "
        "WHERE {id:String} = '' OR episode_id = {id:String} ORDER BY sent_at DESC LIMIT {limit:UInt32}"
    )
    return list(client.query(sql, parameters={"id": episode_id or "", "limit": limit}).named_results())
