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
from tests.api.helpers import TRIGGER, finished_run, user_with
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


def stop_refreshing(page) -> None:
    """Cancel the page's pending timers, its self-refresh among them."""
    page.evaluate("() => { let id = setTimeout(() => {}, 0); while (id > 0) clearTimeout(id--); }")


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
        reason = row.get_by_role("textbox", name="Reason for release_escrows")
        reason.fill("how big is the backlog?")
        row.get_by_role("button", name="Dry run").click()

        # then the dashboard says the run was queued
        message = page.locator(".messages li").first
        expect(message).to_contain_text("Dry run of release_escrows queued as run #")
        run_id = int(re.search(r"#(\d+)", message.inner_text()).group(1))

        # and, refreshing itself, shows the run finished by the worker, marked as a dry run,
        # with its summary as labelled figures and the amount in naira
        run_row = page.locator(f'tr[data-run="{run_id}"]')
        expect(run_row.locator("td.status")).to_have_text("succeeded", timeout=60_000)
        expect(run_row.locator(".badge.dry-run")).to_have_text("dry run")
        summary = run_row.locator("td.summary")
        expect(summary.locator("li", has_text="Escrows released")).to_have_text(
            "Escrows released 2"
        )
        expect(summary.locator("li", has_text="Amount released")).to_have_text(
            "Amount released ₦100.00"
        )
        expect(summary).not_to_contain_text("amount_released")
        expect(summary).not_to_contain_text("Dry run")  # the mark says it, not a figure
        # and the dry run is not among the failures, nor the cron text wrapped
        expect(page.locator("#failures")).to_contain_text("No failures.")
        cron = page.locator('tr[data-job="expire_matches"] code.cron')
        assert cron.evaluate("e => e.getClientRects().length") == 1  # one line box
        page.screenshot(path=ARTIFACTS / "dashboard-dry-run.png", full_page=True)

        # and its page has the summary as figures, the whole of it folded underneath
        # (opened by its address, the dashboard's refresh stopped first: it could race a click
        # or the navigation)
        link = run_row.get_by_role("link", name=f"#{run_id}")
        assert link.get_attribute("href") == f"/dashboard/runs/{run_id}/"
        stop_refreshing(page)
        page.goto(f"{live_server.url}/dashboard/runs/{run_id}/")
        figures = page.locator("#summary .figures")
        expect(figures.locator("li", has_text="Amount released")).to_have_text(
            "₦100.00 Amount released"
        )
        expect(figures.locator("li", has_text="Escrows released")).to_have_text(
            "2 Escrows released"
        )
        expect(page.locator("#run .badge.dry-run")).to_have_text("dry run")
        expect(page.locator("#summary pre")).not_to_be_visible()
        page.get_by_text("Full summary (JSON)").click()
        expect(page.locator("#summary pre")).to_contain_text('"escrows_released": 2')
        page.screenshot(path=ARTIFACTS / "run-detail.png", full_page=True)

    run = JobRun.objects.get(pk=run_id)
    assert (run.status, run.dry_run) == (RunStatus.SUCCEEDED, True)
    assert (run.requested_by, run.reason) == (operator.username, "how big is the backlog?")
    assert (ARTIFACTS / "dashboard-dry-run.png").stat().st_size > 10_000


ADMIN_WIDTH = 1400
EARLIER_TRACEBACK = "Traceback (most recent call last):\n" + "".join(
    f'  File "/app/ledger/services/escrows.py", line {100 + line}, in release_batch\n'
    "    transfers_book(lines)\n"
    for line in range(30)
)


def failed_run_with_attempts(attempts: int = 4):
    """A failed release_escrows run whose every attempt failed with a long traceback."""
    from jobs.models import AttemptStatus, JobRunAttempt

    run = finished_run(
        "release_escrows",
        status=RunStatus.FAILED,
        error="OperationalError: could not serialize access due to concurrent update",
        traceback=EARLIER_TRACEBACK + "OperationalError: could not serialize access (last)",
        summary={"escrows_released": 1_204, "amount_released": 1_030_700, "escrows_failed": 3},
    )
    run.attempts.all().delete()
    for number in range(1, attempts + 1):
        JobRunAttempt.objects.create(
            run=run,
            number=number,
            status=AttemptStatus.FAILED,
            started_at=run.started_at,
            finished_at=run.finished_at,
            worker=f"worker-{number}:4242",
            error="OperationalError: could not serialize access due to concurrent update",
            traceback=EARLIER_TRACEBACK + f"OperationalError: attempt {number}",
        )
    run.attempt_count = attempts
    run.save(update_fields=["attempt_count"])
    return run


def page_width(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def production_sized_ids() -> None:
    """Seven-digit ids for runs, escrows, donations and wallets: columns must fit them."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("jobs_jobrun", "ledger_escrow", "ledger_donation", "ledger_wallet"):
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), 4000000)", [table])


def overflow(page, selector: str) -> int:
    """How many pixels of `selector`'s content are cut off on the right (0: it fits)."""
    return page.locator(selector).evaluate("e => e.scrollWidth - e.clientWidth")


def test_the_admin_run_and_escrow_lists_fit_1400_px_and_a_failed_run_reads_short(live_server):
    # given ids as long as production's, run history with a dry run, a long job name asked
    # for by an operator, and a failure retried three times; and escrows of every size, one
    # released by a run
    production_sized_ids()
    now = timezone.now()
    for amount in (1_030_700, 4_000, 9_876_543):
        donation_at(at=now - HOLD - timedelta(minutes=10), amount=amount)
    donation_at(at=now - HOLD - timedelta(hours=5), amount=250_000)
    released = finished_run(
        "release_escrows", summary={"escrows_released": 3, "amount_released": 1_034_700}
    )
    finished_run(
        "release_escrows",
        dry_run=True,
        trigger="admin",
        summary={"dry_run": True, "escrows_released": 2, "amount_released": 10_000},
    )
    asked = finished_run("deliver_notifications", trigger="admin", duration_ms=12_345)
    JobRun.objects.filter(pk=asked.pk).update(requested_by="operations-lead-on-call")
    failed = failed_run_with_attempts()
    from ledger.models import Escrow

    Escrow.objects.filter(amount=4_000).update(
        status="released", released_at=now, released_by_run=released
    )
    from jobs.schedules import schedule_create

    tokyo = schedule_create(
        by="ops",
        name="cycles-asia-pacific-tokyo",
        job="cycle_reminders",
        cron="0 9 * * 1-5",
        timezone="Asia/Tokyo",
        notes="Reminders at nine in Tokyo on weekdays",
    )
    JobRun.objects.filter(pk=released.pk).update(schedule=tokyo)
    operator = user_with(superuser=True)
    operator.set_password(PASSWORD)
    operator.save()
    ARTIFACTS.mkdir(exist_ok=True)

    with chromium_page() as page:
        page.set_viewport_size({"width": ADMIN_WIDTH, "height": 900})
        page.goto(f"{live_server.url}/admin/login/?next=/admin/jobs/jobrun/")
        page.fill("#id_username", operator.username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")

        # then the run list fits 1400 px, with a coloured status and a mark on the dry run
        expect(page.locator("#result_list")).to_be_visible()
        page.screenshot(path=ARTIFACTS / "admin-runs.png", full_page=True)
        assert overflow(page, "#changelist .results") <= 0
        assert page_width(page) <= ADMIN_WIDTH
        rows = page.locator("#result_list tbody tr")
        expect(rows).to_have_count(4)
        expect(rows.filter(has_text="dry run")).to_have_count(1)
        assert page.locator("#result_list img[src*='icon-no']").count() == 0
        badge = rows.filter(has_text="Failed").locator("td.field-status_text span")
        assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(207, 34, 46)"
        expect(rows.filter(has_text="deliver_notifications")).to_contain_text("12 s")

        # and a failed run's page shows its summary as figures and folds the attempts'
        # tracebacks under their error lines
        page.goto(f"{live_server.url}/admin/jobs/jobrun/{failed.pk}/change/")
        page.screenshot(path=ARTIFACTS / "admin-failed-run.png", full_page=True)
        expect(page.locator(".field-summary_text")).to_contain_text("Amount released₦10,307.00")
        attempts = page.locator("#attempts-group details")
        expect(attempts).to_have_count(4)
        for index in range(4):
            assert attempts.nth(index).get_attribute("open") is None
        assert page.evaluate("document.documentElement.scrollHeight") < 3_500

        # and the escrow list fits too, every amount in naira, due and overdue told apart
        page.goto(f"{live_server.url}/admin/ledger/escrow/")
        expect(page.locator("#result_list")).to_be_visible()
        page.screenshot(path=ARTIFACTS / "admin-escrows.png", full_page=True)
        assert overflow(page, "#changelist .results") <= 0
        amounts = page.locator("#result_list td.field-amount_text").all_inner_texts()
        assert sorted(amounts) == sorted(["₦10,307.00", "₦40.00", "₦98,765.43", "₦2,500.00"])
        statuses = page.locator("#result_list td.field-status_text").all_inner_texts()
        assert sorted(statuses) == ["Released", "due", "due", "overdue"]
        expect(page.locator("#result_list")).to_contain_text(f"run #{released.pk}")

        # and the schedule list fits too, a Tokyo schedule's next run in JST and in UTC
        page.goto(f"{live_server.url}/admin/jobs/schedule/")
        expect(page.locator("#result_list")).to_be_visible()
        page.screenshot(path=ARTIFACTS / "admin-schedules.png", full_page=True)
        assert overflow(page, "#changelist .results") <= 0
        assert page_width(page) <= ADMIN_WIDTH
        row = page.locator("#result_list tbody tr", has_text="cycles-asia-pacific-tokyo")
        expect(row.locator("td.field-next_run")).to_contain_text("09:00 JST")
        expect(row.locator("td.field-next_run")).to_contain_text("00:00 UTC")
        expect(row.locator("td.field-last_run")).to_contain_text(f"#{released.pk}")

        page.goto(f"{live_server.url}/dashboard/runs/{failed.pk}/")
        page.screenshot(path=ARTIFACTS / "failed-run-detail.png", full_page=True)
        expect(page.locator("#summary .figures")).to_contain_text("₦10,307.00")

        # and the dashboard highlights the lag: an escrow waits past the 2-hour threshold
        page.goto(f"{live_server.url}/dashboard/")
        lag = page.locator("section#lag")
        expect(lag).to_have_class("alarming")
        expect(lag).to_contain_text("₦111,572.43")  # every escrow still holding
        colour = lag.evaluate("e => getComputedStyle(e).borderLeftColor")
        assert colour == "rgb(207, 34, 46)"
        page.screenshot(path=ARTIFACTS / "dashboard-lag-alarming.png", full_page=True)


def in_another_thread(write) -> None:
    """Run `write` (ORM code) in a thread of its own: this one runs Playwright's event loop."""
    import threading

    from django.db import connections

    def target():
        try:
            write()
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()


def test_a_running_runs_page_shows_its_progress_move(live_server, settings):
    # given a release 1,000 escrows into 10,000, and an operator
    from jobs.models import JobRunAttempt, Trigger

    def progress(done: int) -> dict:
        return {
            "done": done,
            "total": 10_000,
            "what": "escrows",
            "batches": done // 1_000,
            "per_second": 500.0,
            "seconds_left": (10_000 - done) / 500,
            "at": timezone.now().isoformat(),
        }

    now = timezone.now()
    run = JobRun.objects.create(
        job="release_escrows",
        trigger=Trigger.ADMIN,
        as_of=now,
        status=RunStatus.RUNNING,
        started_at=now,
        attempt_count=1,
        progress=progress(1_000),
    )
    JobRunAttempt.objects.create(run=run, number=1, started_at=now, worker="host-a:4242")
    operator = user_with(superuser=True)
    operator.set_password(PASSWORD)
    operator.save()
    settings.STEWARD_DASHBOARD_REFRESH_SECONDS = 1
    ARTIFACTS.mkdir(exist_ok=True)

    with chromium_page() as page:
        # when they open the run's page
        page.goto(f"{live_server.url}/admin/login/?next=/dashboard/runs/{run.pk}/")
        page.fill("#id_username", operator.username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        bar = page.locator("#progress .progress-fill")
        count = page.locator("#progress .progress-count")
        expect(count).to_have_text("1,000 / 10,000")
        expect(page.locator("#progress .progress-left")).to_contain_text("about 18 s left")
        first_width = bar.evaluate("e => e.getBoundingClientRect().width")

        # and the run gets further while they watch
        in_another_thread(lambda: JobRun.objects.filter(pk=run.pk).update(progress=progress(6_000)))

        # then the page, refreshing itself, shows its progress move
        expect(count).to_have_text("6,000 / 10,000", timeout=10_000)
        expect(page.locator("#progress .progress-percent")).to_have_text("(60%)")
        expect(page.locator("#progress .progress-left")).to_contain_text("about 8 s left")
        page.wait_for_function(
            "w => document.querySelector('#progress .progress-fill')"
            ".getBoundingClientRect().width > w * 5",
            arg=first_width,
        )
        page.screenshot(path=ARTIFACTS / "run-progress.png", full_page=True)

        # and once the run has finished the page stops refreshing
        in_another_thread(
            lambda: JobRun.objects.filter(pk=run.pk).update(
                status=RunStatus.SUCCEEDED, finished_at=timezone.now(), duration_ms=5_000
            )
        )
        expect(page.locator("#run .badge").first).to_have_text("succeeded", timeout=10_000)
        expect(page.locator("#progress")).to_have_count(0)
