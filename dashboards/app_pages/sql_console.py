"""SQL console: read-only queries scoped to the selected tenant, with row, memory and time limits;
each user's saved queries (`dashboards.queries.saved`) above the editor.

The query goes through the scoped read path (`eventpulse.access.scoped_sql`): every table is
filtered to the tenant picked in the sidebar, and files, system tables, other databases, key
tables, ``SETTINGS`` and ``INTO OUTFILE`` are refused before anything reaches the warehouse.
"""

import re

import streamlit as st
from clickhouse_connect.driver.exceptions import ClickHouseError as DriverError

from dashboards import audit, controls, readonly
from dashboards import formatting as fmt
from dashboards.queries import saved
from dashboards.queries import sql_console as sql_console_queries
from eventpulse.access.statements import Refused
from eventpulse.settings import Settings

EXAMPLE = """SELECT tenant, sum(event_count) AS events, round(sum(error_count) / events, 4) AS error_rate
FROM metrics_1m
WHERE type = '*' AND source = '*' AND window_start >= now() - INTERVAL 1 HOUR
GROUP BY tenant
ORDER BY events DESC"""
_CODE = re.compile(r"Code: (\d+)\. DB::Exception: (.*?)(?: \(version [^)]*\))?(?: \(for url [^)]*\))?$", re.S)


def explain_error(exc: Exception, settings) -> tuple[str, str]:
    """A headline and the server's message for a failed query."""
    text = str(exc)
    match = _CODE.search(text)
    code, message = (int(match.group(1)), match.group(2).strip()) if match else (None, text)
    headline = {
        164: "Refused: the console is read-only (writes, DDL, SET and external table functions are not allowed).",
        159: f"Stopped: the query ran longer than the {settings.sql_max_execution_s:g} s limit.",
        158: f"Stopped: the query would read more than {fmt.count(settings.sql_max_rows_to_read)} rows.",
        396: f"Stopped: the result has more than {fmt.count(settings.sql_max_result_rows)} rows.",
        62: "Syntax error.",
        47: "Unknown column or identifier.",
        60: "Unknown table.",
    }.get(code or 0, f"The query failed (code {code})." if code else "The query failed.")
    return headline, message


settings = Settings().dashboard
picked = controls.filters()
st.title("SQL console")
st.caption(
    f"{picked.tenant_label} only · read-only · at most {fmt.count(settings.sql_max_result_rows)} rows returned, "
    f"{fmt.count(settings.sql_max_rows_to_read)} rows read and {settings.sql_max_execution_s:g} s per query · "
    f"database `{Settings().warehouse.database}`"
)


def load_saved() -> None:
    """Put the picked saved query in the editor (a callback: it runs before the form is drawn)."""
    picked_name = st.session_state.get("sql_saved")
    found = next((q for q in saved.saved_queries() if q.name == picked_name), None)
    if found is not None:
        st.session_state["sql_text"], st.session_state["sql_name"] = found.sql, found.name


def save_current() -> None:
    """Save the editor's query under the name typed beside it (the form's values are in session state)."""
    try:
        kept = saved.save_query(st.session_state.get("sql_name", ""), st.session_state.get("sql_text", ""))
    except ValueError as exc:
        st.session_state["_sql_saved_note"] = ("error", str(exc))
    else:
        st.session_state["_sql_saved_note"] = ("success", f"Saved “{kept.name}”: it is in your saved queries.")
        st.session_state["sql_saved"] = kept.name


def remove_picked() -> None:
    name = st.session_state.get("sql_saved")
    if name:
        saved.remove_query(name)
        st.session_state["_sql_saved_note"] = ("success", f"Removed “{name}” from your saved queries.")
        st.session_state["sql_saved"] = None


mine = saved.saved_queries()
names = [q.name for q in mine]
if st.session_state.get("sql_saved") not in names:
    st.session_state["sql_saved"] = None
shelf = st.container(horizontal=True, vertical_alignment="bottom")
shelf.selectbox(
    "Saved queries",
    names,
    index=None,
    key="sql_saved",
    on_change=load_saved,
    placeholder="Open one of your saved queries" if names else "No saved queries yet: name a query below and save it",
    disabled=not names,
    help="Yours only: each user sees the queries they saved.",
)
shelf.button("Remove", key="sql_remove", icon=":material/delete:", on_click=remove_picked, disabled=not names)
note = st.session_state.pop("_sql_saved_note", None)
if note:
    (st.success if note[0] == "success" else st.error)(note[1])

st.session_state.setdefault("sql_text", EXAMPLE)
with st.form("sql", border=False):
    sql = st.text_area("Query", height=160, key="sql_text")
    row = st.container(horizontal=True, vertical_alignment="bottom")
    run = row.form_submit_button(
        "Run", key="sql_run", icon=":material/play_arrow:", type="primary", shortcut="ctrl+enter"
    )
    row.text_input("Name", key="sql_name", placeholder="Name this query to save it", max_chars=saved.MAX_NAME)
    row.form_submit_button("Save", key="sql_save", icon=":material/bookmark_add:", on_click=save_current)

if run or st.session_state.get("sql_ran"):
    st.session_state["sql_ran"] = True
    try:
        with audit.console_query(sql):  # one audit_log row per run: success, or failure with the reason
            readonly.check_statement(sql)
            result = sql_console_queries.run_readonly(
                sql,
                tenant=picked.tenant,
                max_execution_s=settings.sql_max_execution_s,
                max_result_rows=settings.sql_max_result_rows,
                max_rows_to_read=settings.sql_max_rows_to_read,
            )
    except readonly.RefusedStatement as exc:
        st.error(f"Refused: {exc}", icon=":material/block:")
    except Refused as exc:
        st.error(f"Refused: {exc.message}", icon=":material/block:")
    except DriverError as exc:
        headline, message = explain_error(exc, settings)
        st.error(headline, icon=":material/error:")
        st.code(message, language=None, wrap_lines=True)
    else:
        note = f" · cut at the {fmt.count(settings.sql_max_result_rows)}-row limit" if result.truncated else ""
        st.caption(f"{fmt.count(result.rows.height)} rows in {result.elapsed_s * 1000:,.0f} ms{note}")
        st.dataframe(result.rows, hide_index=True, key="sql_result")
        if result.rows.height:
            st.download_button(
                "CSV", result.rows.write_csv(), "query.csv", "text/csv", icon=":material/download:", on_click="ignore"
            )
