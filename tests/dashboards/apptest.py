"""Helpers to drive the app in-process with Streamlit's AppTest."""

from streamlit.testing.v1 import AppTest

from eventpulse.audit import Actor, AuditWriter
from eventpulse.settings import Settings
from eventpulse.users import add_user
from eventpulse.warehouse.client import create_client
from tests.dashboards.conftest import APP

PASSWORD = "correct horse battery staple"
ADMIN = "dash-admin"
_ADDED: set[tuple[str, str, str]] = set()


def ensure_user(username: str = ADMIN, role: str = "platform_admin", tenant: str = "") -> str:
    """Add ``username`` (password `PASSWORD`) to the database the environment points at, once."""
    warehouse = Settings().warehouse
    key = (warehouse.url, warehouse.database, username)
    if key not in _ADDED:
        client = create_client(warehouse, role="admin")
        try:
            add_user(client, username, role, PASSWORD, tenant=tenant, audit=AuditWriter(client, Actor.local_cli()))
        finally:
            client.close()
        _ADDED.add(key)
    return username


def sign_in(at: AppTest, username: str, password: str = PASSWORD) -> AppTest:
    """Fill the sign-in form and submit it."""
    at.text_input(key="signin_user").input(username)
    at.text_input(key="signin_password").input(password)
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def open_page(page: str | None = None, *, user: str | None = None, **state) -> AppTest:
    """Sign in (as a platform admin unless ``user`` names one added with `ensure_user`), run the app
    (the live page by default), then switch to ``app_pages/<page>.py``."""
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, at.exception
    sign_in(at, user or ensure_user())
    assert "Sign in to EventPulse" not in [t.value for t in at.title], "still on the sign-in page"
    if page:
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def badges(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if "-badge[" in m.value]


def table_with(at: AppTest, column: str):
    """The first dataframe shown whose first column is ``column`` (as pandas)."""
    for df in at.dataframe:
        if list(df.value.columns)[:1] == [column]:
            return df.value
    raise AssertionError(f"no table starting with {column!r}: {[list(d.value.columns) for d in at.dataframe]}")
