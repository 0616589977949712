"""Firings → episodes: the alert state machine, pure (no I/O), so every transition is unit-tested.

Each evaluation's firings are grouped per rule (``group: rule``, the default) or per rule and tenant
(``group: tenant``). A group with firings and no open episode opens one; an open episode whose group
has firings stays open (its members and peak updated); an open episode whose group has none resolves
(the rules' ``lookback_s`` already holds a firing for a few windows after a spike, so a group does
not flap open and shut between two windows). An episode of a rule that was removed resolves.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime

from eventpulse.alert_rules import AlertRule
from eventpulse.alert_state import FIRING, RESOLVED, Episode, new_episode_id
from orchestration.alerting.firing import Firing


def group_key(rule: AlertRule, firing: Firing) -> str:
    return rule.name if rule.group == "rule" else f"{rule.name}:{firing.tenant}"


def _series(firing: Firing) -> str:
    return firing.tenant if firing.type == "*" else f"{firing.tenant} {firing.type}"


@dataclass(frozen=True)
class Change:
    """An episode that changed state: ``what`` is opened or resolved."""

    what: str
    episode: Episode

    def describe(self) -> str:
        e = self.episode
        members = ", ".join(e.series[:10]) + (" ..." if len(e.series) > 10 else "")
        if self.what == "opened":
            return f"alert {e.rule} opened (episode {e.episode_id}, {e.severity}): {members}: {e.message}"
        return f"alert {e.rule} resolved (episode {e.episode_id}), open since {e.opened_at:%Y-%m-%d %H:%M:%S} UTC"


def _peak(rule: AlertRule, firings: list[Firing]) -> Firing:
    worst = min if rule.comparison == "<" or rule.kind == "volume_drop" else max
    return worst(firings, key=lambda f: f.value)


def advance(
    open_episodes: list[Episode], rules: list[AlertRule], firings: list[Firing], now: datetime
) -> tuple[list[Episode], list[Change]]:
    """The episodes after this evaluation (open ones and those that just resolved) and the state changes."""
    by_rule = {r.name: r for r in rules}
    groups: dict[tuple[str, str], list[Firing]] = defaultdict(list)
    for firing in firings:
        groups[(firing.rule, group_key(by_rule[firing.rule], firing))].append(firing)
    current = {(e.rule, e.group_key): e for e in open_episodes}
    episodes: list[Episode] = []
    changes: list[Change] = []
    for key, members in sorted(groups.items()):
        rule = by_rule[key[0]]
        peak = _peak(rule, members)
        tenants = sorted({f.tenant for f in members})
        series = sorted({_series(f) for f in members})
        episode = current.pop(key, None)
        if episode is None:
            episode = Episode(
                episode_id=new_episode_id(),
                rule=rule.name,
                group_key=key[1],
                tenant=tenants[0] if rule.group == "tenant" else "*",
                severity=rule.severity,
                status=FIRING,
                opened_at=now,
                last_firing_at=now,
                resolved_at=None,
                series=series,
                tenants=tenants,
                peak_value=peak.value,
                threshold=rule.threshold,
                message=peak.message,
                updated_at=now,
            )
            changes.append(Change("opened", episode))
        else:
            worse = (
                peak.value != episode.peak_value
                and _peak(rule, [peak, replace(peak, value=episode.peak_value)]) is peak
            )
            grown = sorted(set(episode.tenants) | set(tenants))
            if series == episode.series and grown == episode.tenants and not worse:
                episodes.append(episode)  # unchanged: nothing to write
                continue
            episode = replace(
                episode,
                last_firing_at=now,
                series=series,
                tenants=grown,
                peak_value=peak.value if worse else episode.peak_value,
                message=peak.message if worse else episode.message,
                updated_at=now,
            )
        episodes.append(episode)
    for episode in current.values():  # open, and nothing fires for its group any more
        resolved = replace(episode, status=RESOLVED, resolved_at=now, series=[], updated_at=now)
        episodes.append(resolved)
        changes.append(Change("resolved", resolved))
    return episodes, changes
