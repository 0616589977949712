"""Dashboard sign-in: the login page, failed sign-ins, tenant users fixed to their tenant on every
page (widgets, session state and URL parameters cannot widen it), platform pages, sessions in Redis."""

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboards import signin
from tests.dashboards.apptest import PASSWORD, ensure_user, open_page, sign_in
from tests.dashboards.conftest import APP

OWN, OTHER = "tenant-01", "tenant-02"
TENANT_PAGES = ("live", "historical", "search", "sql_console")


def fresh() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def titles(at: AppTest) -> list[str]:
    return [t.value for t in at.title]


def everything_shown(at: AppTest) -> str:
    """Every text, caption, metric, option and table cell the run rendered."""
    parts = [str(e.value) for kind in ("title", "caption", "markdown", "info", "subheader") for e in getattr(at, kind)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    parts += [" ".join(map(str, s.options)) + f" {s.value}" for s in at.selectbox]
    parts += [df.value.to_csv() for df in at.dataframe]
    return "\n".join(parts)


def sign_in_rows(sql, user: str) -> list[tuple]:
    return sql(
        "SELECT result, role, tenant FROM audit_log WHERE action = 'auth.sign_in' AND target = {u:String}"
        " ORDER BY time",
        u=user,
    )


def test_nobody_signed_in_sees_only_the_sign_in_page(dashboard_env):
    at = fresh()
    assert titles(at) == ["Sign in to EventPulse"]
    assert not at.metric and not at.dataframe
    assert not [b for b in at.button if b.key == "signin_oidc"], "OIDC offered though not configured"
    for page in ("sql_console", "audit"):  # a page's own path answers with the sign-in form too
        at.switch_page(f"app_pages/{page}.py").run()
        assert titles(at) == ["Sign in to EventPulse"] and not at.dataframe


def test_wrong_password_is_refused_and_both_outcomes_are_recorded(dashboard_env, sql):
    user = ensure_user("dash-op", "operator")
    at = sign_in(fresh(), user, "not the password at all")
    assert titles(at) == ["Sign in to EventPulse"]
    assert any("Wrong user or password" in e.value for e in at.error)
    sign_in(at, user, PASSWORD)
    assert "Sign in to EventPulse" not in titles(at)
    rows = sign_in_rows(sql, user)
    assert rows[-2:] == [("failure", "anonymous", ""), ("success", "operator", "")]


def test_oidc_is_offered_when_configured(dashboard_env, monkeypatch):
    monkeypatch.setenv("EVENTPULSE_DASHBOARD_OIDC", "true")
    monkeypatch.setenv("EVENTPULSE_DASHBOARD_OIDC_LABEL", "Sign in with Example SSO")
    at = fresh()
    assert [b.label for b in at.button if b.key == "signin_oidc"] == ["Sign in with Example SSO"]


def test_tenant_analyst_sees_only_their_tenant_on_every_page(dashboard_env, sql):
    user = ensure_user("dash-analyst", "tenant_analyst", OWN)
    at = open_page(user=user)
    tenant_box = at.sidebar.selectbox(key="tenant_fixed")
    assert tenant_box.options == [OWN] and tenant_box.disabled
    # Operator pages are not there for a tenant user, even by their path.
    for page in ("audit", "health", "alerts"):
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(f"app_pages/{page}.py")
    for page in TENANT_PAGES:
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, (page, at.exception)
        at.session_state["tenant"] = OTHER  # what the operator selector would hold
        at.query_params["tenant"] = OTHER
        at.run()
        assert not at.exception, (page, at.exception)
        shown = everything_shown(at)
        assert OWN in shown, page
        assert OTHER not in shown and "tenant-03" not in shown and "tenant-00" not in shown, page
    # The console reads the analyst's tenant only, whatever the SQL asks for.
    at.switch_page("app_pages/sql_console.py").run()
    at.text_area(key="sql_text").set_value("SELECT DISTINCT tenant FROM window_aggregates ORDER BY tenant")
    next(b for b in at.button if b.label == "Run").click().run()
    assert not at.exception, at.exception
    assert list(at.dataframe[0].value["tenant"]) == [OWN]
    assert sign_in_rows(sql, user)[-1] == ("success", "tenant_analyst", OWN)


def test_scope_comes_from_the_session_not_the_request(dashboard_env):
    at = open_page(user=ensure_user("dash-analyst", "tenant_analyst", OWN))
    token = at.session_state[signin.TOKEN_KEY]
    # The same check tenant_frame applies, run in the analyst's session.
    probe = AppTest.from_function(_probe_scope, args=(OTHER,), default_timeout=30)
    probe.session_state[signin.TOKEN_KEY] = token
    probe.run()
    assert [m.value for m in probe.markdown] == ["refused: dash-analyst reads tenant 'tenant-01' only"]


def _probe_scope(asked: str) -> None:
    import streamlit as st

    from dashboards import signin
    from dashboards.queries import client as query_client

    try:
        query_client.scope_for(asked)
    except signin.ScopeError as exc:
        st.markdown(f"refused: {exc}")
    else:
        st.markdown("allowed")


def test_operator_picks_tenants_and_reads_the_audit_log(dashboard_env):
    at = open_page(user=ensure_user("dash-op", "operator"))
    options = at.sidebar.selectbox(key="tenant").options
    assert OWN in options and OTHER in options and "All tenants" in options
    at.switch_page("app_pages/audit.py").run()
    assert "Audit log" in titles(at)


def test_sessions_live_in_redis_with_a_ttl_and_sign_out_ends_them(dashboard_env, monkeypatch, redis_settings):
    monkeypatch.setenv("EVENTPULSE_REDIS_URL", redis_settings.url)
    monkeypatch.setenv("EVENTPULSE_REDIS_KEY_PREFIX", redis_settings.key_prefix)
    monkeypatch.setenv("EVENTPULSE_DASHBOARD_SESSION_TTL_S", "600")
    st.cache_resource.clear()
    import redis

    r = redis.Redis.from_url(redis_settings.url)
    at = open_page(user=ensure_user("dash-analyst", "tenant_analyst", OWN))
    token = at.session_state[signin.TOKEN_KEY]
    key = f"{redis_settings.key_prefix}dash-session:{token.split('.')[0]}"
    assert 0 < r.pttl(key) <= 600_000
    st.cache_resource.clear()  # another dashboard process: nothing shared but Redis
    other = AppTest.from_file(APP, default_timeout=60)
    other.session_state[signin.TOKEN_KEY] = token
    other.run()
    assert "Sign in to EventPulse" not in titles(other)
    forged = AppTest.from_file(APP, default_timeout=60)
    forged.session_state[signin.TOKEN_KEY] = token.split(".")[0] + ".0000"
    forged.run()
    assert titles(forged) == ["Sign in to EventPulse"]
    other.button(key="sign_out").click().run()
    assert titles(other) == ["Sign in to EventPulse"]
    assert r.exists(key) == 0
    at.run()  # signed out everywhere
    assert titles(at) == ["Sign in to EventPulse"]
    st.cache_resource.clear()
