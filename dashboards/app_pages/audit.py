"""Audit log: who did what, when and from where (``audit_log``, newest first), for administrators."""

import streamlit as st

from dashboards import audit, controls
from dashboards import formatting as fmt
from eventpulse.audit import ACTIONS, AuditQuery

LIMIT = 1000

st.title("Audit log")
st.caption(
    "Every admin action: API key and user changes, sign-ins, SQL console queries, Dagster runs, retention, "
    "alert-rule changes and migrations. Append-only; kept 730 days."
)
view = controls.filters()
left, middle, right = st.columns(3)
actor = left.selectbox("Actor", ["", *audit.actors()], format_func=lambda a: a or "Anyone", key="audit_actor")
areas = sorted({a.split(".")[0] for a in ACTIONS})
action = middle.selectbox("Action", ["", *areas, *ACTIONS], format_func=lambda a: a or "Any action", key="audit_action")
result = right.selectbox("Result", ["", "success", "failure"], format_func=lambda r: r or "Any", key="audit_result")

query = AuditQuery(
    actor=actor, action=action, tenant=view.tenant, result=result, since=view.start, until=view.end, limit=LIMIT
)
rows = audit.log_rows(query)
failures = rows.filter(rows["result"] == "failure").height if rows.height else 0
st.caption(
    f"{fmt.count(rows.height)} rows{' (the newest ' + fmt.count(LIMIT) + ')' if rows.height == LIMIT else ''} · "
    f"{fmt.count(failures)} failures · {view.label} · {view.tenant_label}"
)
if rows.height:
    st.dataframe(
        rows.drop("event_id"),
        hide_index=True,
        key="audit_rows",
        column_config={"time": st.column_config.DatetimeColumn("time (UTC)", format="YYYY-MM-DD HH:mm:ss.SSS")},
    )
else:
    st.info(
        "No audit rows match these filters: widen the time range, or set actor, action or result back to any.",
        icon=":material/info:",
    )
