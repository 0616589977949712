"""Alerts: open episodes (acknowledge), silences (add, end), the rules (view, edit with validation),
episode history and notifications. Writes go through the dashboards' writer client; the alert sensor
picks them up on its next tick."""

from datetime import timedelta

import polars as pl
import streamlit as st

from dashboards import audit, controls
from dashboards import formatting as fmt
from dashboards.queries import alerts as alerts_queries
from dashboards.queries import client as query_client
from eventpulse import alert_state
from eventpulse.alert_rules import parse_rules, read_rules_text, rules_path, save_rules
from eventpulse.settings import Settings

SILENCE_CHOICES = {"30 minutes": 30, "1 hour": 60, "2 hours": 120, "8 hours": 480, "1 day": 1440, "1 week": 10080}


def rules_table(text: str) -> pl.DataFrame:
    """The rules as a table (raises ``ValueError`` on an invalid file, like the sensor does)."""
    return pl.DataFrame(
        [
            {
                "rule": r.name,
                "severity": r.severity,
                "kind": r.kind,
                "condition": r.condition(),
                "window": f"{r.window_seconds} s",
                "per": r.group_by.replace("_", ", "),
                "grouped by": r.group,
                "min events": r.min_events,
                "tenants": ", ".join(r.tenants) or "all",
            }
            for r in parse_rules(text)
        ]
    )


def _acknowledge(episode_id: str, note: str) -> None:
    done = alert_state.acknowledge(audit.writer().client, episode_id, by=audit.viewer().name, note=note)
    alerts_queries.clear()
    st.session_state["alerts_flash"] = f"Acknowledged {done.episode_id}"
    st.rerun()  # the figures above were drawn before the change


def _silence(rule: str, tenant: str, minutes: int, reason: str) -> None:
    made = alert_state.add_silence(
        audit.writer().client,
        rule=rule,
        tenant=tenant.strip(),
        duration=timedelta(minutes=minutes),
        by=audit.viewer().name,
        reason=reason,
    )
    alerts_queries.clear()
    st.session_state["alerts_flash"] = f"Silence {made.silence_id} until {made.ends_at:%Y-%m-%d %H:%M} UTC"
    st.rerun()


def _end_silence(silence_id: str) -> None:
    alert_state.end_silence(audit.writer().client, silence_id)
    alerts_queries.clear()
    st.rerun()


picked = controls.filters()
st.title("Alerts")
if flash := st.session_state.pop("alerts_flash", None):
    st.success(flash)
st.caption(f"{picked.tenant_label} · {picked.label} · episodes per rule, evaluated every minute by orchestration")

settings = Settings()
path = rules_path(settings.orchestration.alert_rules_path, settings.data_dir)
text = read_rules_text(path)
try:
    rule_names = [r.name for r in parse_rules(text)]
except ValueError:
    rule_names = []

if not query_client.table_exists("alert_episodes"):
    st.info("No `alert_episodes` table in this warehouse yet: run `eventpulse migrate` (migrations 0110–0113).")
    episodes = pl.DataFrame()
else:
    episodes = alerts_queries.episodes(picked.tenant, picked.start, picked.end)
open_ = episodes.filter(pl.col("status") == "firing") if episodes.height else episodes
silences = (
    alerts_queries.silences(controls.utc_now()) if query_client.table_exists("alert_silences") else pl.DataFrame()
)
kpis = st.columns(4)
kpis[0].metric("Open episodes", fmt.count(open_.height), border=True)
critical = open_.filter(pl.col("severity") == "critical").height if open_.height else 0
kpis[1].metric("Critical open", fmt.count(critical), border=True)
unacked = open_.filter(pl.col("acked_by") == "").height if open_.height else 0
kpis[2].metric("Unacknowledged", fmt.count(unacked), border=True, help="Reminded and escalated until acknowledged.")
kpis[3].metric("Active silences", fmt.count(silences.height), border=True)

st.subheader("Open episodes")
if not open_.height:
    st.success("Nothing is firing. Episodes open here when a rule fires; each is notified once, then reminded.")
else:
    st.dataframe(
        open_.select("episode_id", "rule", "severity", "opened_at", "tenants", "series", "peak_value", "acked_by"),
        hide_index=True,
        key="open_episodes",
        column_config={
            "opened_at": st.column_config.DatetimeColumn("opened (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "peak_value": st.column_config.NumberColumn("peak", format="%.4g"),
        },
    )
    with st.form("ack_form", border=True):
        choice = st.selectbox("Episode", open_["episode_id"].to_list(), key="ack_episode", format_func=lambda e: e[:10])
        note = st.text_input("Note", key="ack_note", placeholder="What you are doing about it")
        if st.form_submit_button("Acknowledge", icon=":material/done:") and choice:
            _acknowledge(choice, note)

st.subheader("Silences")
with st.form("silence_form", border=True):
    cols = st.columns(4)
    rule = cols[0].selectbox("Rule", ["", *rule_names], key="silence_rule", format_func=lambda r: r or "every rule")
    tenant = cols[1].text_input("Tenant", key="silence_tenant", placeholder="any tenant")
    duration = cols[2].selectbox("For", list(SILENCE_CHOICES), key="silence_for")
    reason = cols[3].text_input("Reason", key="silence_reason")
    if st.form_submit_button("Silence", icon=":material/notifications_off:"):
        _silence(rule, tenant, SILENCE_CHOICES[duration], reason)
if silences.height:
    st.dataframe(silences, hide_index=True, key="active_silences")
    ending = st.selectbox("End a silence", silences["silence_id"].to_list(), key="end_silence_id", index=None)
    if st.button("End silence", key="end_silence", disabled=ending is None) and ending:
        _end_silence(ending)
else:
    st.caption("No active silence.")

st.subheader("Rules")
st.caption(f"`{path}`" + ("" if path.exists() else " (not written yet: the shipped defaults are in effect)"))
try:
    st.dataframe(rules_table(text), hide_index=True, key="alert_rules")
except ValueError as exc:  # an invalid file: say why, as the sensor would
    st.error(f"The alert rules in `{path}` are invalid: {exc}")
with st.expander("Edit rules", icon=":material/edit:"):
    edited = st.text_area("Rules (YAML)", text, height=320, key="rules_text")
    if st.button("Save rules", key="save_rules", icon=":material/save:"):
        try:
            saved = save_rules(path, edited)
        except ValueError as exc:
            st.error(f"Not saved: {exc}")
        else:
            st.success(f"Saved {len(saved)} rule(s) to `{path}`; the sensor uses them from its next tick.")

st.subheader("History")
if episodes.height:
    st.dataframe(
        episodes.select(
            "episode_id",
            "rule",
            "severity",
            "status",
            "opened_at",
            "resolved_at",
            "tenants",
            "notifications",
            "acked_by",
            "message",
        ),
        hide_index=True,
        key="episode_history",
        column_config={
            "opened_at": st.column_config.DatetimeColumn("opened (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "resolved_at": st.column_config.DatetimeColumn("resolved (UTC)", format="YYYY-MM-DD HH:mm:ss"),
        },
    )
else:
    st.caption("No episode in this range.")
sent = alerts_queries.notifications(picked.start, picked.end)
if sent.height:
    st.caption("Notifications")
    st.dataframe(sent, hide_index=True, key="notifications")
pipeline = alerts_queries.alert_history(picked.tenant, picked.start, picked.end)
if pipeline.height:
    st.caption("Pipeline alerts (consumer lag, incidents)")
    st.dataframe(pipeline, hide_index=True, key="alert_history")
