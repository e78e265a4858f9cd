"""The dashboard in a real headless Chromium: log in, press "Dry run" on release_escrows, and
watch the run appear, finished by a real worker, with its summary.

It uses Debian's `chromium` package through Playwright's driver (no browser download); without
it the test fails and says what to install.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from jobs.models import JobRun, RunStatus
from tests.api.helpers import TRIGGER, user_with
from tests.factories import HOLD, donation_at

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"
PASSWORD = "correct horse battery staple"


@contextmanager
def chromium_page():
    """A page in Debian's Chromium. Django's ORM must not be used inside the block: the sync
    Playwright API runs an event loop in this thread."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"The browser test needs Debian's Chromium at {CHROMIUM}: "
            "apt-get install chromium (README, 'System packages').",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1600, "height": 1000})
        finally:
            browser.close()


def test_an_operator_dry_runs_release_escrows_from_the_dashboard(
    live_server, worker_process, settings
):
    # given two escrows past their hold, an operator who may trigger runs, a fast refresh
    now = timezone.now()
    for amount in (4_000, 6_000):
        donation_at(at=now - HOLD - timedelta(minutes=10), amount=amount)
    operator = user_with(TRIGGER)
    operator.set_password(PASSWORD)
    operator.save()
    settings.STEWARD_DASHBOARD_REFRESH_SECONDS = 1
    ARTIFACTS.mkdir(exist_ok=True)

    with chromium_page() as page:
        # when they log in on their way to the dashboard
        page.goto(f"{live_server.url}/dashboard/")
        page.fill("#id_username", operator.username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        expect(page.locator("h2", has_text="Jobs")).to_be_visible()

        # and press "Dry run" on release_escrows
        row = page.locator('tr[data-job="release_escrows"]')
        row.get_by_role("textbox").fill("how big is the backlog?")
        row.get_by_role("button", name="Dry run").click()

        # then the dashboard says the run was queued
        message = page.locator(".messages li").first
        expect(message).to_contain_text("Dry run of release_escrows queued as run #")
        run_id = int(re.search(r"#(\d+)", message.inner_text()).group(1))

        # and, refreshing itself, shows the run finished by the worker, with its summary
        run_row = page.locator(f'tr[data-run="{run_id}"]')
        expect(run_row.locator("td.status")).to_have_text("succeeded", timeout=60_000)
        expect(run_row.locator("td.summary")).to_contain_text("escrows_released: 2")
        expect(run_row.locator("td.summary")).to_contain_text("amount_released: 10000")
        page.screenshot(path=ARTIFACTS / "dashboard-dry-run.png", full_page=True)

        # and its page has the whole summary
        run_row.get_by_role("link", name=f"#{run_id}").click()
        expect(page.locator("#summary pre")).to_contain_text('"escrows_released": 2')
        page.screenshot(path=ARTIFACTS / "run-detail.png", full_page=True)

    run = JobRun.objects.get(pk=run_id)
    assert (run.status, run.dry_run) == (RunStatus.SUCCEEDED, True)
    assert (run.requested_by, run.reason) == (operator.username, "how big is the backlog?")
    assert (ARTIFACTS / "dashboard-dry-run.png").stat().st_size > 10_000
