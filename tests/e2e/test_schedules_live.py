"""Schedules edited through the API while two real schedulers and a real worker run: every
change is obeyed from the next minute, nothing restarts, and each (schedule, slot) runs once."""

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db.models import Count

from jobs.models import JobRun, RunStatus, Schedule, ScheduleChange
from tests.api.helpers import SCHEDULE_PERMISSIONS, token_client, user_with
from tests.workers import WorkerProcess, subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

MINUTE = timedelta(minutes=1)


def wait_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


def wait_for(predicate, *, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {message}")


def slot_run(schedule_id: int, slot: datetime) -> JobRun | None:
    return JobRun.objects.filter(schedule_id=schedule_id, slot=slot).first()


def finished_run_of(schedule_id: int, slot: datetime):
    def check() -> bool:
        run = slot_run(schedule_id, slot)
        return run is not None and run.is_finished

    return check


def duplicated_slots() -> list[dict]:
    return list(
        JobRun.objects.filter(schedule__isnull=False)
        .values("schedule_id", "slot")
        .annotate(runs=Count("id"))
        .filter(runs__gt=1)
    )


@pytest.fixture
def fleet(tmp_path):
    """Two scheduler processes and a worker, started once the test's schedules are rows."""
    processes: list[subprocess.Popen] = []
    worker = WorkerProcess(log_path=tmp_path / "worker.log")

    def start() -> None:
        worker.start()
        for index in range(2):
            processes.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", "runscheduler"],
                    cwd=settings.BASE_DIR,
                    env=subprocess_env(),
                    stdout=open(tmp_path / f"scheduler{index}.log", "w"),  # noqa: SIM115
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        for index in range(len(processes)):
            wait_for(
                lambda i=index: "Starting Periodiq" in (tmp_path / f"scheduler{i}.log").read_text(),
                timeout=60,
                message=f"scheduler {index} to start",
            )

    yield start
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    worker.stop()
    for index in range(len(processes)):
        log = (tmp_path / f"scheduler{index}.log").read_text()
        assert "Scheduler stopped." in log, log


@pytest.mark.timeout(600)
def test_schedules_added_edited_paused_and_removed_through_the_api_are_obeyed_live(fleet):
    # given no schedule but ours, an operator allowed to manage schedules, and the fleet up
    Schedule.objects.all().delete()
    client = token_client(user_with(*SCHEDULE_PERMISSIONS))
    fleet()
    # (at least 10 s before a minute's end, so the schedule is a row before its first slot)
    first = (datetime.now(UTC) + MINUTE).replace(second=0, microsecond=0)
    if (first - datetime.now(UTC)).total_seconds() < 10:
        wait_until(first + timedelta(seconds=1))
        first += MINUTE

    # when a schedule for every minute is added through the API, and a second one beside it
    created = client.post(
        "/api/v1/schedules/",
        {"name": "live", "job": "expire_matches", "cron": "* * * * *", "reason": "e2e"},
        format="json",
    )
    assert created.status_code == 201, created.content
    live = created.json()["data"]["id"]
    beside = client.post(
        "/api/v1/schedules/",
        {"name": "beside", "job": "reconcile_ledger", "cron": "* * * * *"},
        format="json",
    ).json()["data"]["id"]

    # then its run of the coming minute happens, with no restart
    wait_for(finished_run_of(live, first), timeout=75, message="the first slot's run")
    assert slot_run(live, first).status == RunStatus.SUCCEEDED

    # when its cron is edited to fire two minutes later only, the next slot moves there
    moved_to = first + 2 * MINUTE
    edited = client.patch(
        f"/api/v1/schedules/{live}/",
        {"cron": f"{moved_to.minute} * * * *", "reason": "move it"},
        format="json",
    )
    assert edited.status_code == 200, edited.content
    wait_for(finished_run_of(live, moved_to), timeout=200, message="the moved slot's run")
    assert slot_run(live, first + MINUTE) is None

    # when it is paused (and set back to every minute), its next slot is recorded skipped
    assert (
        client.post(
            f"/api/v1/schedules/{live}/pause", {"reason": "hold"}, format="json"
        ).status_code
        == 200
    )
    client.patch(f"/api/v1/schedules/{live}/", {"cron": "* * * * *"}, format="json")
    paused_slot = moved_to + MINUTE
    wait_for(finished_run_of(live, paused_slot), timeout=80, message="the paused slot")
    assert slot_run(live, paused_slot).status == RunStatus.SKIPPED

    # and so far the two schedulers recorded one run per (schedule, slot)
    assert duplicated_slots() == []
    assert JobRun.objects.filter(schedule_id=live).count() == 3

    # when it is removed, nothing more of it runs
    assert client.delete(f"/api/v1/schedules/{live}/").status_code in (200, 204)
    removed_at = datetime.now(UTC)
    wait_until(removed_at.replace(second=0, microsecond=0) + MINUTE + timedelta(seconds=8))
    assert not JobRun.objects.filter(job="expire_matches", slot__gt=removed_at).exists()

    # and the schedule beside ran once every minute it existed
    assert duplicated_slots() == []
    beside_slots = sorted(JobRun.objects.filter(schedule_id=beside).values_list("slot", flat=True))
    assert beside_slots[0] == first
    assert beside_slots == [first + index * MINUTE for index in range(len(beside_slots))]
    assert len(beside_slots) >= 4
    # and each change is in the audit, with who and why
    actions = list(
        ScheduleChange.objects.filter(schedule_name="live")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["created", "updated", "paused", "updated", "removed"]
