"""Who is signed in to the dashboards, the sign-in page, sign-out, and the tenant scope that follows.

Local users are the ``users`` table's (`eventpulse users add`), checked by
`eventpulse.users.authenticate`, which records every sign-in and failed one in ``audit_log``. With
``EVENTPULSE_DASHBOARD_OIDC`` the page also offers Streamlit's ``st.login``; the identity's e-mail
must name a user of the table, whose role and tenant then apply. The scope every tenant-facing
query runs with comes from the signed-in user (`scope_tenant`), never from the URL or a widget.

The session token also goes to the browser as the ``eventpulse_session`` cookie (SameSite=Strict,
Secure over HTTPS, the session's TTL), so a reload, a new tab or a shared link stays signed in:
Streamlit's session state dies with the page, the cookie does not. Streamlit offers no way to set a
cookie from Python, so a one-line script (`sync_cookie`) writes it; it cannot be HttpOnly. What it
holds is only the signed session id: the record stays server-side, sign-out deletes it everywhere,
and a forged or stale cookie finds nothing.
"""

from __future__ import annotations

import contextlib
import json

import streamlit as st
from clickhouse_connect.driver.client import Client

from dashboards.sessions import SessionStore, SessionUser, shared_secret
from eventpulse.audit import AuditWriter, record_sign_in
from eventpulse.cache.client import REDIS_ERRORS, sync_client
from eventpulse.settings import Settings
from eventpulse.users import authenticate
from eventpulse.users.roles import PLATFORM_ROLES
from eventpulse.users.store import find_user

TOKEN_KEY = "_signin_token"
COOKIE_NAME = "eventpulse_session"
_COOKIE_PENDING_KEY = "_signin_cookie_pending"  # the token to write to the cookie ("" clears it)
_LOCAL_ADMIN = SessionUser("local", "platform_admin", "", "sign-in off", float("inf"))


class ScopeError(PermissionError):
    """A query asked for a tenant the signed-in user may not read."""


def _audit_writer() -> AuditWriter:
    from dashboards import audit  # audit -> controls -> queries -> signin: imported when used

    return audit.writer()


def users_client() -> Client:
    """The client of the audit writer (writer credentials: the reader may not read ``users``)."""
    return _audit_writer().client


@st.cache_resource(show_spinner=False)
def _store_for(url: str, prefix: str, secret: str, ttl_s: float) -> SessionStore | None:
    """The Redis-backed store shared by every browser session (None without Redis)."""
    settings = Settings().redis.model_copy(update={"url": url, "key_prefix": prefix})
    client = sync_client(settings)
    if client is None:
        return None
    return SessionStore(client, shared_secret(client, secret, prefix), prefix=prefix, ttl_s=ttl_s)


@st.cache_resource(show_spinner=False)
def _local_secret(configured: str) -> bytes:
    return shared_secret(None, configured, "")


@st.cache_resource(show_spinner=False)
def _local_records() -> dict[str, bytes]:
    """This process's session records when there is no Redis (every browser session's, so a reload finds its own)."""
    return {}


def store() -> SessionStore:
    """Sessions in Redis when ``EVENTPULSE_REDIS_URL`` is set, else in this process's memory."""
    settings = Settings()
    secret = settings.dashboard.session_secret.get_secret_value()
    shared = _store_for(settings.redis.url, settings.redis.key_prefix, secret, settings.dashboard.session_ttl_s)
    if shared is not None:
        return shared
    return SessionStore(
        None, _local_secret(secret), prefix="", ttl_s=settings.dashboard.session_ttl_s, local=_local_records()
    )


def current_user() -> SessionUser | None:
    """The signed-in user of this browser session (a local platform admin when sign-in is off)."""
    if not Settings().dashboard.sign_in:
        return _LOCAL_ADMIN
    token = st.session_state.get(TOKEN_KEY)
    if not isinstance(token, str) and _COOKIE_PENDING_KEY not in st.session_state:  # not just signed out
        token = _cookie_token()
    if isinstance(token, str):
        try:
            user = store().get(token)
        except REDIS_ERRORS:
            user = None
        if user is not None:
            st.session_state[TOKEN_KEY] = token
            return user
        st.session_state.pop(TOKEN_KEY, None)
    return _oidc_user()


def _cookie_token() -> str | None:
    """The session token the browser sent with this page's connection, if any."""
    try:
        token = st.context.cookies.get(COOKIE_NAME)
    except (AttributeError, RuntimeError):  # no browser connection (AppTest, bare mode)
        return None
    return token if isinstance(token, str) and token else None


def sync_cookie() -> None:
    """Write (after sign-in) or clear (after sign-out) the session cookie in the browser, once."""
    token = st.session_state.get(_COOKIE_PENDING_KEY)
    if token is None:
        return
    max_age = int(Settings().dashboard.session_ttl_s) if token else 0
    cookie = json.dumps(f"{COOKIE_NAME}={token}; Path=/; Max-Age={max_age}; SameSite=Strict")
    st.html(
        f"<script>document.cookie = {cookie} + (location.protocol === 'https:' ? '; Secure' : '');</script>",
        unsafe_allow_javascript=True,
    )
    if token:  # a clearing stays pending, so this page's (stale) cookie is not read again
        del st.session_state[_COOKIE_PENDING_KEY]


def scope_tenant(requested: str) -> str:
    """The tenant a query may read: a tenant user's own (asking for another raises `ScopeError`);
    for operators and platform admins the one they picked ("" = every tenant)."""
    user = current_user()
    if user is None:
        raise ScopeError("nobody is signed in")
    if user.tenant_scoped and requested != user.tenant:
        raise ScopeError(f"{user.username} reads tenant {user.tenant!r} only")
    return requested


def is_platform(user: SessionUser) -> bool:
    return user.role in PLATFORM_ROLES


def _source() -> str:
    address = getattr(st.context, "ip_address", None)
    return address if isinstance(address, str) else ""


def _start(username: str, role: str, tenant: str, method: str) -> None:
    token, _ = store().create(username, role, tenant, method)
    st.session_state[TOKEN_KEY] = token
    st.session_state[_COOKIE_PENDING_KEY] = token


def _oidc_user() -> SessionUser | None:
    """After ``st.login``: the provisioned user the identity's e-mail names (recorded once per session)."""
    if not Settings().dashboard.oidc or not _oidc_signed_in():
        return None
    email = str(st.user.get("email") or "")
    user = find_user(users_client(), email) if email else None
    record_sign_in(
        _audit_writer(),
        email or "(no e-mail)",
        ok=user is not None,
        role=user.role if user else "",
        tenant=user.tenant if user else "",
        source=_source(),
        method="oidc",
        error="" if user else "no EventPulse user for this identity",
    )
    if user is None:
        st.session_state["_signin_error"] = f"{email or 'This identity'} has no EventPulse user: ask an administrator."
        st.logout()
        return None
    _start(user.username, user.role, user.tenant, "oidc")
    return current_user()


def _oidc_signed_in() -> bool:
    try:
        return bool(st.user.is_logged_in)
    except (AttributeError, KeyError, RuntimeError):  # st.login not configured in secrets.toml
        return False


def sign_out() -> None:
    """End the session everywhere (and the OIDC identity's, if it signed in that way)."""
    token = st.session_state.pop(TOKEN_KEY, None)
    st.session_state[_COOKIE_PENDING_KEY] = ""
    if isinstance(token, str):
        with contextlib.suppress(*REDIS_ERRORS):
            store().delete(token)
    if _oidc_signed_in():
        st.logout()


def sign_in_page() -> None:
    """The page shown to whoever is not signed in."""
    settings = Settings().dashboard
    st.title("Sign in to EventPulse")
    error = st.session_state.pop("_signin_error", None)
    if error:
        st.error(error, icon=":material/block:")
    with st.form("signin", border=True):
        username = st.text_input("User", key="signin_user", autocomplete="username")
        password = st.text_input("Password", type="password", key="signin_password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        user = authenticate(users_client(), username.strip(), password, audit=_audit_writer(), source=_source())
        if user is None:
            st.error("Wrong user or password.", icon=":material/block:")
        else:
            _start(user.username, user.role, user.tenant, "password")
            st.rerun()
    if settings.oidc:
        st.divider()
        if st.button(settings.oidc_label, key="signin_oidc", icon=":material/key:"):
            st.login(settings.oidc_provider or None)
    st.caption("Users are added with `eventpulse users add`; `eventpulse up` creates `admin` on its first run.")
