"""The dashboards in a real browser (headless Debian Chromium): the live page while the pipeline
runs (Streamlit server, dataflow in tail mode, traffic produced in real time; a screenshot goes to
test-artifacts/), and sign-in: a wrong password is refused, and a tenant analyst finds no other
tenant's name anywhere on any page they can open, also after tampering with the URL; the sign-in
survives a reload and a new tab (the session cookie) and ends with sign-out, also for a replayed or
forged cookie."""

import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from devstack.traffic.generator import EventFactory
from tests.dashboards.apptest import PASSWORD, ensure_user
from tests.dashboards.conftest import APP, REPO, use_warehouse
from tests.dashboards.seeding import PROFILE, seed
from tests.support.pipeline import produce, start_flow
from tests.support.services import free_port, stop

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _traffic(bootstrap: str, topic: str, stop_event: threading.Event, rate_per_s: float = 150.0) -> None:
    """Produce events stamped with the current time until told to stop."""
    factory = EventFactory(PROFILE, seed=5)
    while not stop_event.is_set():
        now_ms = int(time.time() * 1000)
        batch = int(rate_per_s / 4)
        produce(bootstrap, topic, factory.messages(batch, now_ms, rate_per_s))
        stop_event.wait(0.25)


def _sign_in(page, username: str, password: str) -> None:
    page.get_by_label("User").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def _launch(pw):
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.fail("Debian's chromium is required for the browser test: run scripts/ensure-chromium.sh")
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def _serve_streamlit(port: int, warehouse, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTPULSE_")}
    env.update(
        **warehouse.environment(),
        EVENTPULSE_DASHBOARD_GATEWAY_URL="http://127.0.0.1:9",
    )
    argv = [sys.executable, "-m", "streamlit", "run", APP, "--server.headless", "true", "--server.port", str(port)]
    argv += ["--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    stop(proc)
    raise TimeoutError(f"streamlit not ready:\n{log.read_text()[-3000:]}")


def test_live_page_in_a_real_browser(broker_settings, warehouse, tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    use_warehouse(monkeypatch, warehouse)
    admin = ensure_user()

    ARTIFACTS.mkdir(exist_ok=True)
    flow = start_flow(broker_settings, warehouse, tail=True, log=tmp_path / "flow.log")
    stop_traffic = threading.Event()
    traffic = threading.Thread(
        target=_traffic, args=(broker_settings.bootstrap, broker_settings.events_topic, stop_traffic), daemon=True
    )
    traffic.start()
    port = free_port()
    server = _serve_streamlit(port, warehouse, tmp_path / "streamlit.log")
    try:
        with sync_playwright() as pw:
            browser = _launch(pw)
            page = browser.new_page(viewport={"width": 1600, "height": 1900})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
            _sign_in(page, admin, PASSWORD)
            # Data arrives: the dataflow emits open windows every second, the page refreshes every 2 s.
            events_value = page.locator('[data-testid="stMetric"]').filter(has_text="Events/s")
            events_value.first.wait_for(timeout=60_000)
            page.get_by_text(re.compile(r"provisional window")).first.wait_for(timeout=60_000)

            def rate() -> float:
                text = events_value.first.locator('[data-testid="stMetricValue"]').inner_text()
                return float(text.replace(",", ""))

            # Wait for a few closed windows so the headline describes a full one.
            closed = page.get_by_text(
                re.compile(r"Last 15 min: [\d,]+ events, [\d,]+ errors .*, ([4-9]|\d\d+) windows")
            )
            closed.first.wait_for(timeout=60_000)
            assert rate() > 0
            updated = page.get_by_text(re.compile(r"updated \d\d:\d\d:\d\d UTC")).first
            first = updated.inner_text()
            page.wait_for_timeout(3_500)
            assert updated.inner_text() != first, "the live panel did not refresh"
            page.wait_for_timeout(1_000)  # let the charts draw
            page.screenshot(path=str(ARTIFACTS / "dashboard-live.png"), full_page=True)
            assert page.get_by_text("Top event types (last 15 min)").count() == 1
            browser.close()
    finally:
        stop_traffic.set()
        traffic.join(10)
        stop(server)
        stop(flow)


TENANT_PAGES = ("Live", "Historical", "Event search", "SQL console")


def test_tenant_analyst_sees_no_other_tenant_in_a_real_browser(warehouse, warehouse_client, tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    seed(warehouse_client, 4000, int(time.time() * 1000) - 600_000, 10.0)
    tenants = PROFILE.tenant_names()
    own, others = tenants[1], [t for t in tenants if t != tenants[1]]
    use_warehouse(monkeypatch, warehouse)
    analyst = ensure_user("browser-analyst", "tenant_analyst", own)
    port = free_port()
    server = _serve_streamlit(port, warehouse, tmp_path / "streamlit.log")
    base = f"http://127.0.0.1:{port}"

    def settled(page) -> str:
        """The page's whole DOM once its script run is over (tables included: their cells are in it)."""
        page.locator("h1").first.wait_for(timeout=60_000)
        page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
        page.wait_for_timeout(1_500)
        return page.content()

    def assert_only_own(page, where: str) -> None:
        html = settled(page)
        assert own in html, f"{where}: the analyst's own tenant is not shown"
        leaked = [t for t in others if t in html]
        assert not leaked, f"{where}: other tenants shown: {leaked}"

    try:
        with sync_playwright() as pw:
            browser = _launch(pw)
            context = browser.new_context(viewport={"width": 1600, "height": 1400})
            page = context.new_page()
            page.goto(base + "/", wait_until="domcontentloaded")
            _sign_in(page, analyst, "a wrong password, surely")
            page.get_by_text("Wrong user or password.").wait_for(timeout=30_000)
            assert page.get_by_role("heading", name="Sign in to EventPulse").count() == 1
            _sign_in(page, analyst, PASSWORD)
            page.get_by_text(f"Signed in as {analyst}").wait_for(timeout=60_000)
            for title in TENANT_PAGES:
                page.locator('[data-testid="stSidebarNavLink"]', has_text=title).first.click()
                page.get_by_role("heading", name=title).first.wait_for(timeout=60_000)
                assert_only_own(page, title)
            nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
            assert "Audit log" not in nav and "Pipeline health" not in nav and "Alerts" not in nav
            # A reload, a new tab and a URL typed by hand keep the session (the cookie), and its scope.
            page.reload(wait_until="domcontentloaded")
            page.get_by_text(f"Signed in as {analyst}").wait_for(timeout=60_000)
            cookie = next(c for c in context.cookies() if c["name"] == "eventpulse_session")
            assert cookie["sameSite"] == "Strict" and cookie["expires"] > time.time() + 3600
            tab = context.new_page()
            tab.goto(base + "/historical", wait_until="domcontentloaded")
            tab.get_by_text(f"Signed in as {analyst}").wait_for(timeout=60_000)
            tab.close()
            # Tampering with the URL changes nothing: still the analyst's tenant only, no audit page.
            for path in ("historical", "sql", "audit", "search"):
                page.goto(f"{base}/{path}?tenant={others[0]}&tenant_fixed={others[1]}", wait_until="domcontentloaded")
                page.get_by_text(f"Signed in as {analyst}").wait_for(timeout=60_000)
                assert_only_own(page, f"/{path}?tenant={others[0]}")  # /audit: not theirs, the default page
                assert page.get_by_role("heading", name="Audit log").count() == 0
            # Sign-out ends the session for good: a reload, or the old cookie put back, finds the sign-in page.
            page.get_by_role("button", name="Sign out").click()
            page.get_by_role("heading", name="Sign in to EventPulse").wait_for(timeout=60_000)
            page.reload(wait_until="domcontentloaded")
            page.get_by_role("heading", name="Sign in to EventPulse").wait_for(timeout=60_000)
            for value in (cookie["value"], "forged." + "0" * 64):
                context.add_cookies([{"name": "eventpulse_session", "value": value, "url": base}])
                page.goto(base + "/historical", wait_until="domcontentloaded")
                page.get_by_role("heading", name="Sign in to EventPulse").wait_for(timeout=60_000)
                assert not [t for t in tenants if t in page.content()]
            browser.close()
    finally:
        stop(server)
