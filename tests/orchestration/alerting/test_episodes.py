"""The alert state machine and the escalation policy, without I/O."""

from datetime import UTC, datetime, timedelta

from eventpulse.alert_rules import AlertRule
from eventpulse.alert_state import FIRING, RESOLVED, Silence
from orchestration.alerting.episodes import advance
from orchestration.alerting.escalation import EscalationPolicy, channels_for, due
from orchestration.alerting.firing import Firing

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RULE = AlertRule(name="errors", metric="error_rate", threshold=0.2)
PER_TENANT = AlertRule(name="busy", metric="event_count", threshold=10, group="tenant")


def _firing(rule: AlertRule, tenant: str, value: float = 0.5) -> Firing:
    return Firing(
        rule.name, "warning", tenant, "*", rule.metric, value, rule.threshold, ">", 60, NOW, f"{tenant} {value}"
    )


def test_firings_of_a_rule_are_one_episode_until_none_fires():
    episodes, changes = advance([], [RULE], [_firing(RULE, "a"), _firing(RULE, "b", 0.9)], NOW)
    (episode,) = episodes
    assert [c.what for c in changes] == ["opened"]
    assert (episode.series, episode.tenant, episode.peak_value, episode.status) == (["a", "b"], "*", 0.9, FIRING)

    again, changes = advance(episodes, [RULE], [_firing(RULE, "b", 0.6)], NOW + timedelta(minutes=1))
    assert changes == [] and again[0].episode_id == episode.episode_id
    assert again[0].series == ["b"] and again[0].peak_value == 0.9 and again[0].tenants == ["a", "b"]

    unchanged, _ = advance(again, [RULE], [_firing(RULE, "b", 0.6)], NOW + timedelta(minutes=2))
    assert unchanged[0] is again[0]  # nothing new: nothing to write

    done, changes = advance(again, [RULE], [], NOW + timedelta(minutes=3))
    assert [c.what for c in changes] == ["resolved"] and done[0].status == RESOLVED and done[0].series == []


def test_group_tenant_opens_one_episode_per_tenant():
    episodes, changes = advance([], [PER_TENANT], [_firing(PER_TENANT, "a", 50), _firing(PER_TENANT, "b", 60)], NOW)
    assert sorted((e.group_key, e.tenant) for e in episodes) == [("busy:a", "a"), ("busy:b", "b")]
    assert len(changes) == 2


def test_an_episode_of_a_removed_rule_resolves():
    episodes, _ = advance([], [RULE], [_firing(RULE, "a")], NOW)
    _, changes = advance(episodes, [PER_TENANT], [], NOW)
    assert [c.what for c in changes] == ["resolved"]


def _open(**changes):
    (episode,), _ = advance([], [RULE], [_firing(RULE, "a")], NOW)
    return episode.__class__(**{**episode.__dict__, **changes})


POLICY = EscalationPolicy(renotify=timedelta(minutes=5), escalate_after=timedelta(minutes=12))


def test_escalation_policy():
    fresh = _open()
    assert due(fresh, POLICY, NOW, acked=False, silenced=False) == ["firing"]
    assert due(fresh, POLICY, NOW, acked=False, silenced=True) == []
    told = _open(notifications=1, notified_at=NOW)
    assert due(told, POLICY, NOW + timedelta(minutes=4), acked=False, silenced=False) == []
    assert due(told, POLICY, NOW + timedelta(minutes=5), acked=False, silenced=False) == ["reminder"]
    assert due(told, POLICY, NOW + timedelta(minutes=12), acked=False, silenced=False) == ["reminder", "escalation"]
    assert due(told, POLICY, NOW + timedelta(minutes=30), acked=True, silenced=False) == []
    resolved = _open(status=RESOLVED, notifications=1, escalated_at=NOW)
    assert due(resolved, POLICY, NOW, acked=True, silenced=True) == ["resolved"]
    assert channels_for("resolved", resolved, POLICY) == ("webhook", "slack", "email")
    assert due(_open(status=RESOLVED), POLICY, NOW, acked=False, silenced=False) == []  # nobody was told


def test_silences_match_rule_and_tenant():
    episode = _open()
    silence = Silence("s", "errors", "a", NOW, NOW + timedelta(hours=1), "bob", "")
    assert silence.matches(episode) and silence.active(NOW) and not silence.active(NOW + timedelta(hours=1))
    assert not Silence("s", "other", "", NOW, NOW, "bob", "").matches(episode)
    assert not Silence("s", "", "b", NOW, NOW, "bob", "").matches(episode)
    assert Silence("s", "", "", NOW, NOW, "bob", "").matches(episode)
