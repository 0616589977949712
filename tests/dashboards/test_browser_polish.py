"""The dashboards' polish, checked in a real browser (headless Debian Chromium at 1280 px, in a time zone
far from UTC so that a chart drawn in the browser's local time shows): every page opens by its URL path;
no KPI value is cut off; every time axis reads UTC on a 24-hour clock; the open minute on Historical is
marked provisional; tenant and time range stay in the URL from page to page and a copied link opens the
same view; a saved SQL-console query is there again in a new session."""

import re
import time
from datetime import UTC, datetime, timedelta

from tests.dashboards.apptest import PASSWORD, ensure_user
from tests.dashboards.conftest import use_warehouse
from tests.dashboards.seeding import PROFILE, reopen_newest_minute, seed
from tests.dashboards.test_browser import ARTIFACTS, _launch, _serve_streamlit, _sign_in
from tests.support.services import free_port, stop

WIDTH = 1280
TIME_ZONE = "Asia/Kolkata"  # UTC+05:30: local-time labels would be off by 5 h 30 min
PAGES = {  # URL path -> the page's heading
    "live": "Live",
    "historical": "Historical",
    "search": "Event search",
    "sql": "SQL console",
    "health": "Pipeline health",
    "alerts": "Alerts",
    "audit": "Audit log",
}
KPI_PAGES = ("live", "historical", "health", "alerts")
_CLOCK = re.compile(r"^(\d\d):(\d\d)(?::(\d\d))?$")

_TRUNCATED_JS = """els => els.map(el => {
    const cut = [el, ...el.querySelectorAll('*')].some(n => n.scrollWidth > n.clientWidth + 1);
    return {text: el.innerText, cut, width: el.clientWidth};
})"""


def settle(page) -> None:
    """Wait for the page's heading and the end of its script run, then for the charts to draw."""
    page.locator("h1").first.wait_for(timeout=60_000)
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
    page.wait_for_timeout(1_500)


def assert_no_truncated_kpi(page, where: str) -> int:
    values = page.locator('[data-testid="stMetricValue"]')
    found = values.evaluate_all(_TRUNCATED_JS)
    cut = [f"{v['text']!r} ({v['width']} px)" for v in found if v["cut"]]
    assert not cut, f"{where}: KPI values cut off at {WIDTH} px: {cut}"
    return len(found)


def assert_utc_24_hour_axes(page, where: str, start: datetime, end: datetime) -> int:
    """Every clock label on a chart axis is HH:MM[:SS] on a 24-hour clock, inside [start, end] in UTC."""
    labels = page.locator('[data-testid="stVegaLiteChart"] .role-axis-label text').all_text_contents()
    clocks = [label for label in labels if ":" in label or "M" in label]
    assert clocks, f"{where}: no time axis labels found"
    minutes = {
        (start + timedelta(minutes=m)).strftime("%H:%M") for m in range(int((end - start).total_seconds() // 60) + 1)
    }
    for label in clocks:
        match = _CLOCK.match(label)
        assert match and int(match.group(1)) < 24, f"{where}: {label!r} is not a 24-hour clock time"
        assert f"{match.group(1)}:{match.group(2)}" in minutes, f"{where}: {label!r} is not a UTC time of the range"
    assert not [label for label in labels if re.search(r"\b[AP]M\b", label)], labels
    return len(clocks)


def sidebar_value(page, label: str) -> str:
    """What the sidebar's select box ``label`` shows (its text and its input's value)."""
    box = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]', has_text=label).first
    return box.evaluate("el => el.innerText + ' ' + [...el.querySelectorAll('input')].map(i => i.value).join(' ')")


def query_of(url: str) -> dict[str, str]:
    from urllib.parse import parse_qsl, urlsplit

    return dict(parse_qsl(urlsplit(url).query))


def test_dashboard_polish_in_a_real_browser(warehouse, warehouse_client, tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    now_ms = int(time.time() * 1000)
    seed(warehouse_client, 24_000, now_ms - 40 * 60_000, 10.0)  # 40 minutes up to now, every window final
    open_minute = reopen_newest_minute(warehouse_client)
    tenant = PROFILE.tenant_names()[2]
    use_warehouse(monkeypatch, warehouse)
    admin = ensure_user()
    port = free_port()
    server = _serve_streamlit(port, warehouse, tmp_path / "streamlit.log")
    base = f"http://127.0.0.1:{port}"
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = _launch(pw)
            context = browser.new_context(viewport={"width": WIDTH, "height": 1000}, timezone_id=TIME_ZONE)
            page = context.new_page()
            try:
                _polish_checks(page, context, base, admin, tenant, open_minute)
            except Exception:
                page.screenshot(path=str(ARTIFACTS / "polish-failure.png"), full_page=True)
                raise
            browser.close()
    finally:
        stop(server)


def _polish_checks(page, context, base: str, admin: str, tenant: str, open_minute: datetime) -> None:
    page.goto(base + "/live", wait_until="domcontentloaded")
    _sign_in(page, admin, PASSWORD)
    page.get_by_text(f"Signed in as {admin}").wait_for(timeout=60_000)
    deadline = time.monotonic() + 30  # the session cookie is written by a script after the sign-in run
    while not any(c["name"] == "eventpulse_session" for c in context.cookies()):
        assert time.monotonic() < deadline, "no session cookie after signing in"
        page.wait_for_timeout(200)
    pages_by_url_without_cut_values(page, base)
    utc_24_hour_axes_and_provisional_marker(page, base, open_minute)
    filters_kept_in_the_url(page, context, base, tenant)
    saved_query_in_a_new_session(page, context, base)


def pages_by_url_without_cut_values(page, base: str) -> None:
    # Every page by its own URL path (each goto is a new session: the cookie keeps the sign-in).
    for path, heading in PAGES.items():
        page.goto(f"{base}/{path}", wait_until="domcontentloaded")
        page.get_by_role("heading", name=heading).first.wait_for(timeout=60_000)
        settle(page)
        assert page.get_by_text("Page not found").count() == 0, path
        assert page.url.split("?")[0] == f"{base}/{path}"
        if path in KPI_PAGES:
            assert assert_no_truncated_kpi(page, path) >= (4 if path != "health" else 1), path
        page.screenshot(path=str(ARTIFACTS / f"polish-{path}.png"), full_page=True)
    page.goto(base + "/", wait_until="domcontentloaded")  # the root opens Live at its own path
    page.get_by_role("heading", name="Live").first.wait_for(timeout=60_000)
    page.wait_for_url(re.compile(r"/live(\?|$)"), timeout=30_000)


def utc_24_hour_axes_and_provisional_marker(page, base: str, open_minute: datetime) -> None:
    # Axes: UTC, 24-hour, on Live (last 15 minutes) and Historical (last hour).
    now = datetime.now(tz=UTC)
    page.goto(f"{base}/live", wait_until="domcontentloaded")
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=60_000)
    settle(page)
    assert assert_utc_24_hour_axes(page, "live", now - timedelta(minutes=17), now + timedelta(minutes=3)) >= 4
    page.goto(f"{base}/historical?range=1h", wait_until="domcontentloaded")
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=60_000)
    settle(page)
    assert assert_utc_24_hour_axes(page, "historical", now - timedelta(minutes=62), now + timedelta(minutes=3)) >= 4

    # The open minute is marked provisional (a badge naming it, and the chart's hollow points).
    marker = page.get_by_text(re.compile(rf"Provisional from {open_minute:%Y-%m-%d %H:%M} UTC"))
    marker.first.wait_for(state="visible", timeout=30_000)
    assert marker.first.is_visible()


def filters_kept_in_the_url(page, context, base: str, tenant: str) -> None:
    # Tenant and range from a link, kept in the URL from page to page, also where no range is drawn.
    page.goto(f"{base}/historical?tenant={tenant}&range=6h", wait_until="domcontentloaded")
    settle(page)
    assert tenant in sidebar_value(page, "Tenant") and "Last 6 hours" in sidebar_value(page, "Time range")
    assert tenant in page.get_by_text(re.compile(r"Last 6 hours \(")).first.inner_text()
    for title in ("Live", "Event search", "SQL console", "Historical"):
        page.locator('[data-testid="stSidebarNavLink"]', has_text=title).first.click()
        page.get_by_role("heading", name=title).first.wait_for(timeout=60_000)
        settle(page)
        page.wait_for_function(
            "t => location.search.includes('tenant=' + t) && location.search.includes('range=6h')",
            arg=tenant,
            timeout=30_000,
        )
        assert query_of(page.url) == {"tenant": tenant, "range": "6h"}, (title, page.url)
        assert tenant in sidebar_value(page, "Tenant"), title
    assert "Last 6 hours" in sidebar_value(page, "Time range")  # kept across Live and the console
    # A change made in the page goes into the URL, and the link opens the same view elsewhere.
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]', has_text="Time range").first.click()
    page.get_by_role("option", name="Last 24 hours").click()
    page.wait_for_function("() => location.search.includes('range=24h')", timeout=30_000)
    link = page.url
    tab = context.new_page()
    tab.goto(link, wait_until="domcontentloaded")
    tab.get_by_role("heading", name="Historical").first.wait_for(timeout=60_000)
    settle(tab)
    assert tenant in sidebar_value(tab, "Tenant") and "Last 24 hours" in sidebar_value(tab, "Time range")
    tab.close()


def saved_query_in_a_new_session(page, context, base: str) -> None:
    # A saved query is there again in a new session, and opens in the editor.
    name, query = (
        "errors per type",
        "SELECT type, sum(error_count) AS errors FROM window_aggregates GROUP BY type",
    )
    page.goto(f"{base}/sql", wait_until="domcontentloaded")
    settle(page)
    page.get_by_label("Query").fill(query)
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text(f"Saved “{name}”").wait_for(timeout=30_000)
    tab = context.new_page()
    tab.goto(f"{base}/sql", wait_until="domcontentloaded")
    settle(tab)
    tab.locator('[data-testid="stSelectbox"]', has_text="Saved queries").first.click()
    tab.get_by_role("option", name=name).click()
    tab.wait_for_function(
        "q => [...document.querySelectorAll('textarea')].some(t => t.value === q)", arg=query, timeout=30_000
    )
    tab.screenshot(path=str(ARTIFACTS / "polish-saved-query.png"), full_page=True)
