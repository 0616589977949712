"""The Alerts page in a real browser (headless Debian Chromium): an open episode the rule engine opened is
listed, acknowledged from the page's form, and the acknowledgement is in the warehouse."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from eventpulse.alert_rules import AlertRule
from eventpulse.alert_state import acks, read_episodes
from eventpulse.config.orchestration import OrchestrationSettings
from orchestration.alerting.service import tick
from tests.dashboards.apptest import PASSWORD, ensure_user
from tests.dashboards.conftest import use_warehouse
from tests.dashboards.test_browser import _launch, _serve_streamlit, _sign_in
from tests.orchestration.alerting.windows import insert_windows, minutes, window_row
from tests.support.services import free_port, stop

pytestmark = pytest.mark.integration


def test_acknowledge_an_episode_in_a_real_browser(warehouse, warehouse_client, tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    insert_windows(
        warehouse_client, [window_row("acme", m, 100, errors=60) for m in minutes(now - timedelta(minutes=4), 3)]
    )
    rule = AlertRule(name="errors_in_browser", metric="error_rate", threshold=0.2, severity="critical")
    tick(warehouse_client, [rule], OrchestrationSettings(alert_escalate_after_minutes=0), now=now)
    (episode,) = read_episodes(warehouse_client)
    use_warehouse(monkeypatch, warehouse)
    admin = ensure_user()
    port = free_port()
    server = _serve_streamlit(port, warehouse, tmp_path / "streamlit.log")
    try:
        with sync_playwright() as pw:
            browser = _launch(pw)
            page = browser.new_context(viewport={"width": 1280, "height": 1400}).new_page()
            page.goto(f"http://127.0.0.1:{port}/alerts", wait_until="domcontentloaded")
            _sign_in(page, admin, PASSWORD)
            page.get_by_role("heading", name="Open episodes").wait_for(timeout=60_000)
            page.get_by_text("Unacknowledged").first.wait_for(timeout=30_000)
            page.get_by_label("Note").fill("looking from the browser")
            page.get_by_role("button", name="Acknowledge", exact=True).click()
            page.get_by_text(f"Acknowledged {episode.episode_id}").wait_for(timeout=60_000)
            browser.close()
    finally:
        stop(server)
    deadline = time.monotonic() + 10
    while not (found := acks(warehouse_client, [episode.episode_id])) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [(a.acked_by, a.note) for a in found.values()] == [(admin, "looking from the browser")]
