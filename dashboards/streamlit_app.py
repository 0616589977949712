"""EventPulse dashboards: ``streamlit run dashboards/streamlit_app.py``.

The entry point sets the page up, declares the pages and draws the shared sidebar controls;
each page lives in ``app_pages/`` and reads the controls through `dashboards.controls`. Nobody
signed in sees only the sign-in page (`dashboards.signin`); tenant users get the tenant pages only.
"""

import sys
from pathlib import Path

import streamlit as st

# `streamlit run dashboards/streamlit_app.py` puts dashboards/ (not the repo) on sys.path.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from dashboards import controls, signin  # noqa: E402

_PAGES = Path(__file__).parent / "app_pages"

st.set_page_config(page_title="EventPulse", page_icon=":material/monitoring:", layout="wide")


user = signin.current_user()
signin.sync_cookie()
live = st.Page(_PAGES / "live.py", title="Live", icon=":material/speed:", url_path="live")
# The root URL opens Live at /live: Streamlit serves its default page at "/" only, so a default Live
# would answer /live with "Page not found".
home = st.Page(lambda: None, title="EventPulse", url_path="home", default=True, visibility="hidden")
pages = {
    "Metrics": [
        home,
        live,
        st.Page(_PAGES / "historical.py", title="Historical", icon=":material/history:", url_path="historical"),
    ],
    "Explore": [
        st.Page(_PAGES / "search.py", title="Event search", icon=":material/search:", url_path="search"),
        st.Page(_PAGES / "sql_console.py", title="SQL console", icon=":material/terminal:", url_path="sql"),
    ],
}
if user is None or signin.is_platform(user):  # pipeline-wide pages and the audit log: operators, platform admins
    pages["Operations"] = [
        st.Page(_PAGES / "health.py", title="Pipeline health", icon=":material/monitor_heart:", url_path="health"),
        st.Page(_PAGES / "alerts.py", title="Alerts", icon=":material/notifications:", url_path="alerts"),
        st.Page(_PAGES / "audit.py", title="Audit log", icon=":material/policy:", url_path="audit"),
    ]
if user is None:  # every path answers with the sign-in form (no page runs); after it, the page asked for
    st.navigation(pages, position="hidden")
    signin.sign_in_page()
    st.stop()
page = st.navigation(pages)
if page.url_path == "":  # "/" (or "/home"): the Live page, with the link's tenant and range
    st.switch_page(live, query_params=st.query_params.to_dict())
with st.sidebar:
    st.caption(f"Signed in as **{user.username}** · {user.role}" + (f" of {user.tenant}" if user.tenant else ""))
    if user.method != "sign-in off":
        st.button("Sign out", key="sign_out", icon=":material/logout:", on_click=signin.sign_out)
controls.draw_sidebar(show_range=page.title not in ("Live", "SQL console"))
page.run()
