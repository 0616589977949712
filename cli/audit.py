"""`eventpulse audit`: list the audit log (filters) or follow it as rows arrive (``--follow``)."""

import signal
from datetime import UTC, datetime, timedelta
from types import FrameType

import click
import orjson

from eventpulse.audit import ACTIONS, AuditEntry, AuditQuery, follow_audit, read_audit
from eventpulse.settings import Settings
from eventpulse.warehouse.client import create_client


def _since(text: str | None) -> datetime | None:
    """``2026-12-01``, ``2026-12-01T10:00``, or a duration back from now: ``15m``, ``2h``, ``7d``."""
    if not text:
        return None
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    if text[-1] in units and text[:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r}: an ISO date/time or a duration like 15m, 2h, 7d") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _line(entry: AuditEntry) -> str:
    params = orjson.dumps(entry.parameters, option=orjson.OPT_SORT_KEYS).decode() if entry.parameters else ""
    when = entry.time.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    error = f"  error: {entry.error}" if entry.error else ""
    return (
        f"{when} {entry.result:7} {entry.action:22} {entry.actor}({entry.role}) tenant={entry.tenant or '*'} "
        f"target={entry.target} source={entry.source} {params}{error}"
    )


def _json(entry: AuditEntry) -> str:
    return orjson.dumps(entry.__dict__, default=str).decode()


@click.command("audit")
@click.option("--actor", default="", help="Only this actor (user, key or process name).")
@click.option("--action", default="", help=f"An action or its area, e.g. api_key ({', '.join(ACTIONS)}).")
@click.option("--tenant", default="", help="Only actions on this tenant.")
@click.option("--result", type=click.Choice(["success", "failure"]), default=None, help="Only this outcome.")
@click.option("--since", default=None, help="From this time (ISO, UTC) or duration back (15m, 2h, 7d).")
@click.option("--until", default=None, help="Before this time (ISO, UTC) or duration back.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True, help="Most rows listed.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new rows as they are written (Ctrl-C stops).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def audit(
    actor: str,
    action: str,
    tenant: str,
    result: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    follow: bool,
    as_json: bool,
) -> None:
    """List who did what (newest first), or follow new rows (oldest first) with --follow."""
    query = AuditQuery(actor, action, tenant, result or "", _since(since), _since(until), limit)
    show = _json if as_json else _line
    client = create_client(Settings().warehouse, role="reader")
    try:
        if not follow:
            for entry in read_audit(client, query):
                click.echo(show(entry))
            return
        # SIGTERM ends a follower as Ctrl-C does, whatever disposition the process was started with (an
        # ignored SIGTERM is inherited across exec; seen twice as a follower outliving SIGTERM on CI).
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            for entry in follow_audit(client, query):
                click.echo(show(entry))
        except KeyboardInterrupt:
            pass
    finally:
        client.close()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
