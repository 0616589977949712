"""Which notifications an episode is due at ``now``: the escalation policy, pure (no I/O).

* ``firing``: once, when the episode opens (or when the silence that covered it ends);
* ``reminder``: every ``renotify`` while it fires unacknowledged;
* ``escalation``: once, to the escalation channels, when it has fired unacknowledged ``escalate_after``;
* ``resolved``: once it resolves, if anyone was told it fired.

A silenced episode is not notified at all while the silence lasts; an acknowledged one gets no
reminder and no escalation, but its resolution is still sent.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from eventpulse.alert_state import FIRING, Episode


@dataclass(frozen=True)
class EscalationPolicy:
    channels: tuple[str, ...] = ("webhook", "slack")
    escalation_channels: tuple[str, ...] = ("email",)
    renotify: timedelta | None = timedelta(minutes=30)
    escalate_after: timedelta | None = timedelta(minutes=15)
    notify_resolved: bool = True


def due(episode: Episode, policy: EscalationPolicy, now: datetime, *, acked: bool, silenced: bool) -> list[str]:
    """The kinds of notification ``episode`` is due, in the order they go out."""
    if episode.status != FIRING:
        return ["resolved"] if episode.notifications and policy.notify_resolved else []
    if silenced:
        return []
    if not episode.notifications:
        kinds = ["firing"]
    elif acked:
        return []
    elif policy.renotify and episode.notified_at and now - episode.notified_at >= policy.renotify:
        kinds = ["reminder"]
    else:
        kinds = []
    escalate = policy.escalate_after is not None and now - episode.opened_at >= policy.escalate_after
    if escalate and not acked and episode.escalated_at is None:
        kinds.append("escalation")
    return kinds


def channels_for(kind: str, episode: Episode, policy: EscalationPolicy) -> tuple[str, ...]:
    if kind == "escalation":
        return policy.escalation_channels
    if kind == "resolved" and episode.escalated_at is not None:
        return tuple(dict.fromkeys((*policy.channels, *policy.escalation_channels)))
    return policy.channels
