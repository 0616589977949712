"""`eventpulse alerts list|ack|silence|silences|unsilence|notifications|rules`: alert episodes and rules.

Episodes, acknowledgements and silences live in the warehouse (`eventpulse.alert_state`); the alert
sensor in Dagster reads them on its next tick. ``rules show|check|set`` read, validate and replace the
rules file (``EVENTPULSE_ORCHESTRATION_ALERT_RULES_PATH``, default ``<data_dir>/alert_rules.yaml``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import click
from clickhouse_connect.driver.client import Client

from eventpulse import alert_state as state
from eventpulse.alert_rules import parse_rules, read_rules_text, rules_path, save_rules
from eventpulse.audit.model import Actor
from eventpulse.settings import Settings
from eventpulse.warehouse.client import create_client

T = TypeVar("T")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``1d`` or ``1h30m``."""
    parts = re.fullmatch(r"(?:\d+[smhd])+", text.strip())
    if not parts:
        raise click.BadParameter(f"{text!r}: a duration such as 30m, 2h, 1d or 1h30m")
    return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([smhd])", text)))


@contextmanager
def _client() -> Iterator[Client]:
    client = create_client(Settings().warehouse, role="admin")
    try:
        yield client
    finally:
        client.close()


def _who() -> str:
    return Actor.local_cli().name


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value else "-"


def _lookup(action: Callable[[], T]) -> T:
    try:
        return action()
    except LookupError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("alerts")
def alerts() -> None:
    """Alert episodes (list, acknowledge), silences and the rules file."""


@alerts.command("list")
@click.option("--status", type=click.Choice(["firing", "resolved", "all"]), default="all", show_default=True)
@click.option("--since", default="1d", show_default=True, help="Episodes opened this recently (30m, 2h, 7d).")
def list_(status: str, since: str) -> None:
    """Episodes, newest first: id, rule, status, since, tenants, acknowledged by."""
    start = datetime.now(UTC) - parse_duration(since)
    with _client() as client:
        episodes = state.read_episodes(client, status=None if status == "all" else status, since=start)
        acked = state.acks(client, [e.episode_id for e in episodes])
    click.echo(f"{'EPISODE':16} {'RULE':22} {'SEVERITY':9} {'STATUS':9} {'OPENED (UTC)':19} {'ACKED BY':12} TENANTS")
    for e in episodes:
        ack = acked.get(e.episode_id)
        click.echo(
            f"{e.episode_id:16} {e.rule:22} {e.severity:9} {e.status:9} {_when(e.opened_at):19} "
            f"{ack.acked_by if ack else '-':12} {', '.join(e.tenants)}"
        )


@alerts.command("ack")
@click.argument("episode")
@click.option("--note", default="", help="What you are doing about it.")
def ack(episode: str, note: str) -> None:
    """Acknowledge EPISODE (an id or a unique prefix): no more reminders or escalation."""
    with _client() as client:
        done = _lookup(lambda: state.acknowledge(client, episode, by=_who(), note=note))
    click.echo(f"acknowledged {done.episode_id} as {done.acked_by}")


@alerts.command("silence")
@click.option("--rule", default=state.ANY, help="The rule to silence (default: every rule).")
@click.option("--tenant", default=state.ANY, help="Only episodes of this tenant alone (default: any tenant).")
@click.option("--for", "duration", required=True, help="How long: 30m, 2h, 1d.")
@click.option("--reason", default="", help="Why (shown with the silence).")
def silence(rule: str, tenant: str, duration: str, reason: str) -> None:
    """Hold notifications of matching episodes until the silence expires."""
    with _client() as client:
        made = state.add_silence(
            client, rule=rule, tenant=tenant, duration=parse_duration(duration), by=_who(), reason=reason
        )
    click.echo(
        f"silence {made.silence_id}: {rule or 'every rule'} / {tenant or 'any tenant'} until {_when(made.ends_at)} UTC"
    )


@alerts.command("silences")
@click.option("--all", "show_all", is_flag=True, help="Include expired silences.")
def silences(show_all: bool) -> None:
    """Silences: id, rule, tenant, until, by, reason."""
    with _client() as client:
        found = state.read_silences(client, active_only=not show_all)
    click.echo(f"{'SILENCE':12} {'RULE':22} {'TENANT':16} {'UNTIL (UTC)':19} {'BY':12} REASON")
    for s in found:
        click.echo(
            f"{s.silence_id:12} {s.rule or '*':22} {s.tenant or '*':16} {_when(s.ends_at):19} {s.created_by:12} {s.reason}"
        )


@alerts.command("unsilence")
@click.argument("silence_id")
def unsilence(silence_id: str) -> None:
    """End SILENCE_ID now."""
    with _client() as client:
        _lookup(lambda: state.end_silence(client, silence_id))
    click.echo(f"ended silence {silence_id}")


@alerts.command("notifications")
@click.argument("episode", required=False)
def notifications(episode: str | None) -> None:
    """Notifications sent (of EPISODE, or all), newest first."""
    with _client() as client:
        episode_id = None
        if episode:
            found = _lookup(lambda: state.find_episode(client, episode))
            episode_id = found.episode_id
        rows = state.read_notifications(client, episode_id)
    click.echo(f"{'SENT (UTC)':19} {'EPISODE':16} {'KIND':10} {'CHANNEL':8} {'OK':3} DESTINATION / ERROR")
    for n in rows:
        click.echo(
            f"{_when(n['sent_at']):19} {n['episode_id']:16} {n['kind']:10} {n['channel']:8} "
            f"{'yes' if n['ok'] else 'no':3} {n['destination']} {n['error']}"
        )


def _rules_file() -> Path:
    settings = Settings()
    return rules_path(settings.orchestration.alert_rules_path, settings.data_dir)


@alerts.group("rules")
def rules() -> None:
    """Show, check and replace the alert rules file."""


@rules.command("show")
def rules_show() -> None:
    """Print the rules in effect (the shipped defaults while the file does not exist)."""
    path = _rules_file()
    click.echo(f"# {path}{'' if path.exists() else ' (not written yet: the shipped defaults)'}", err=True)
    click.echo(read_rules_text(path), nl=False)


@rules.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def rules_check(file: Path) -> None:
    """Validate FILE without installing it."""
    try:
        found = parse_rules(file.read_text(), str(file))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    for rule in found:
        click.echo(f"{rule.name}: {rule.condition()}")


@rules.command("set")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def rules_set(file: Path) -> None:
    """Validate FILE and make it the rules file (the sensor picks it up on its next tick)."""
    path = _rules_file()
    try:
        found = save_rules(path, file.read_text())
    except ValueError as exc:
        raise click.ClickException(f"not installed: {exc}") from exc
    click.echo(f"{len(found)} rule(s) written to {path}")
