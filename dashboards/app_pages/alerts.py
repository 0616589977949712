"""Alerts: the rules orchestration evaluates, and their firing history (``alerts FINAL``)."""

from pathlib import Path

import altair as alt
import polars as pl
import streamlit as st

from dashboards import controls
from dashboards import formatting as fmt
from dashboards.queries import alerts as alerts_queries
from dashboards.queries import client as query_client
from eventpulse.alert_rules import EXAMPLE_RULES
from eventpulse.settings import Settings

SEVERITY_COLORS = alt.Scale(domain=["info", "warning", "critical"], range=["#60a5fa", "#f59e0b", "#dc2626"])


def rules_table(path: Path) -> pl.DataFrame:
    """The alert rules file as a table (raises on an invalid file, like the sensor does)."""
    from eventpulse.alert_rules import load_rules  # pydantic + yaml: only when the page shows rules

    rules = load_rules(path)
    return pl.DataFrame(
        [
            {
                "rule": r.name,
                "severity": r.severity,
                "kind": r.kind,
                "metric": r.metric,
                "condition": f"{r.comparison} {r.threshold:g}"
                if r.kind == "threshold"
                else f"< {r.threshold:g} × mean of {r.baseline_windows} windows",
                "window": f"{r.window_seconds} s",
                "per": r.group_by.replace("_", ", "),
                "min events": r.min_events,
                "tenants": ", ".join(r.tenants) or "all",
            }
            for r in rules
        ]
    )


picked = controls.filters()
st.title("Alerts")
st.caption(f"{picked.tenant_label} · {picked.label}")

history = alerts_queries.alert_history(picked.tenant, picked.start, picked.end)
kpis = st.columns(4)
firing = history.height
critical = history.filter(pl.col("severity") == "critical").height if firing else 0
undelivered = history.filter(pl.col("delivered") == 0).height if firing else 0
kpis[0].metric("Firings", fmt.count(firing), border=True)
kpis[1].metric("Critical", fmt.count(critical), border=True)
kpis[2].metric("Rules firing", fmt.count(history["rule"].n_unique() if firing else 0), border=True)
kpis[3].metric("Not delivered", fmt.count(undelivered), border=True, help="No webhook accepted them (yet).")

if not query_client.table_exists("alerts"):
    st.info("No `alerts` table in this warehouse yet: orchestration's migration creates it.")
elif not firing:
    st.success("No alert fired in this range.")
else:
    bucket = "hours" if (picked.end - picked.start).total_seconds() > 6 * 3600 else "minutes"
    chart = (
        alt.Chart(history.select("fired_at", "rule", "severity"), title="Firings", height=200)
        .mark_bar()
        .encode(
            x=alt.X(
                f"{'yearmonthdatehours' if bucket == 'hours' else 'yearmonthdatehoursminutes'}(fired_at):T", title=None
            ),
            y=alt.Y("count():Q", title="firings"),
            color=alt.Color("severity:N", scale=SEVERITY_COLORS, legend=alt.Legend(orient="top", title=None)),
            tooltip=["rule:N", "severity:N", "count():Q"],
        )
    )
    st.altair_chart(chart)
    st.dataframe(
        history,
        hide_index=True,
        key="alert_history",
        column_config={
            "fired_at": st.column_config.DatetimeColumn("fired at (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "value": st.column_config.NumberColumn("value", format="%.4g"),
            "threshold": st.column_config.NumberColumn("threshold", format="%.4g"),
            "delivered": st.column_config.CheckboxColumn("delivered"),
        },
    )

st.subheader("Rules")
rules_path = Settings().orchestration.alert_rules_path or EXAMPLE_RULES
try:
    rules = rules_table(Path(rules_path))
except FileNotFoundError:
    st.info(f"No alert rules file at `{rules_path}` (EVENTPULSE_ORCHESTRATION_ALERT_RULES_PATH).")
except Exception as exc:  # an invalid file: say why, as the sensor would
    st.error(f"The alert rules in `{rules_path}` are invalid: {exc}")
else:
    st.caption(f"From `{rules_path}`; evaluated every minute by orchestration's alert sensor.")
    st.dataframe(rules, hide_index=True, key="alert_rules")
