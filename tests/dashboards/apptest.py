"""Helpers to drive the app in-process with Streamlit's AppTest."""

from streamlit.testing.v1 import AppTest

from tests.dashboards.conftest import APP


def open_page(page: str | None = None, **state) -> AppTest:
    """Run the app (the live page by default), then switch to ``app_pages/<page>.py``."""
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, at.exception
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
