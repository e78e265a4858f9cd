import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone
from dramatiq.middleware import CurrentMessage
from rest_framework import serializers

from jobs.actors import tick_actor
from jobs.cron import slot_of
from jobs.models import JobRun, JobState, RunStatus, Schedule, Trigger
from jobs.runner import job_run_execute
from jobs.schedule_selectors import schedule_missed_slots
from jobs.schedules import schedule_create, schedule_pause, schedule_remove, schedule_update
from jobs.scheduling import job_pause, job_resume, schedules_tick
from ledger.models import Escrow
from ledger.statuses import EscrowStatus
from tests.factories import HOLD, donation_at
from tests.scheduling.helpers import registered_job

SLOT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def only(db):
    """No schedule but the test's own: the default ones made on migrate are removed."""
    Schedule.objects.all().delete()

    def make(name: str, *, job: str = "expire_matches", since: datetime = SLOT, **fields):
        schedule = schedule_create(by="ops", name=name, job=job, **fields)
        # Created just before `since`, so its slots from `since` on are its own.
        Schedule.objects.filter(pk=schedule.pk).update(created_at=since - MINUTE, next_slot=None)
        schedule.refresh_from_db()
        return schedule

    return make


def tick_through(start: datetime, end: datetime, step: timedelta = MINUTE) -> list[JobRun]:
    """A scheduler ticking every minute from start to end, both included."""
    recorded = []
    moment = start
    while moment <= end:
        recorded.extend(schedules_tick(now=moment).recorded)
        moment += step
    return recorded


def test_a_tick_records_its_slot_once(only, broker, django_capture_on_commit_callbacks):
    # given an hourly schedule, ticked twice in its minute (a second scheduler, a retry)
    schedule = only("hourly", cron="0 * * * *")
    with django_capture_on_commit_callbacks(execute=True):
        first = schedules_tick(now=SLOT + timedelta(seconds=0.4))
        second = schedules_tick(now=SLOT + timedelta(seconds=2))

    # then exactly one queued run exists for the slot, as of the slot, naming its schedule
    assert len(first.recorded) == 1
    assert second.recorded == []
    run = JobRun.objects.get(schedule=schedule, slot=SLOT)
    assert run.pk == first.recorded[0].pk
    assert run.status == RunStatus.QUEUED
    assert run.trigger == Trigger.SCHEDULE
    assert run.as_of == SLOT
    assert run.message_id
    assert broker.client.llen("dramatiq:default") == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_ticks_of_one_minute_record_one_run_per_schedule_and_slot(only, broker):
    # given three schedules of one job due at 10:00 and four schedulers ticking it at once
    schedules = [only(f"every-minute-{index}", cron="* * * * *") for index in range(3)]
    barrier = threading.Barrier(4)
    errors = []

    def tick():
        barrier.wait()
        try:
            schedules_tick(now=SLOT)
        except Exception as exc:  # noqa: BLE001 - the assertion below names it
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then each schedule has one run of the slot, and no scheduler failed
    assert errors == []
    for schedule in schedules:
        assert JobRun.objects.filter(schedule=schedule, slot=SLOT).count() == 1


class GameParams(serializers.Serializer):
    game = serializers.ChoiceField(choices=["snake", "pong"])


@pytest.fixture
def pools_job():
    with registered_job("game_pools", params=GameParams) as spec:
        yield spec.name


def test_schedules_of_one_job_fire_in_their_own_time_zones_with_their_params(
    only, broker, pools_job
):
    # given one pools schedule per game, Tokyo's day ending at its midnight, London's at its own
    tokyo = only(
        "pools-snake-tokyo",
        job=pools_job,
        cron="0 0 * * *",
        timezone="Asia/Tokyo",
        params={"game": "snake"},
        since=datetime(2026, 11, 23, 0, 0, tzinfo=UTC),
    )
    london = only(
        "pools-pong-london",
        job=pools_job,
        cron="0 0 * * *",
        timezone="Europe/London",
        params={"game": "pong"},
        since=datetime(2026, 11, 23, 0, 0, tzinfo=UTC),
    )

    # when the scheduler ticks through 14:58-15:01 UTC and 23:59-00:01 UTC
    tokyo_runs = tick_through(
        datetime(2026, 11, 23, 14, 58, tzinfo=UTC), datetime(2026, 11, 23, 15, 1, tzinfo=UTC)
    )
    london_runs = tick_through(
        datetime(2026, 11, 23, 23, 59, tzinfo=UTC), datetime(2026, 11, 24, 0, 1, tzinfo=UTC)
    )

    # then Tokyo's ran at its midnight (15:00 UTC) and London's at its own, each with its game
    assert [(run.schedule_id, run.slot, run.params) for run in tokyo_runs] == [
        (tokyo.pk, datetime(2026, 11, 23, 15, 0, tzinfo=UTC), {"game": "snake"})
    ]
    assert [(run.schedule_id, run.slot, run.params) for run in london_runs] == [
        (london.pk, datetime(2026, 11, 24, 0, 0, tzinfo=UTC), {"game": "pong"})
    ]


def test_pausing_a_job_pauses_its_schedules_and_one_schedule_pauses_alone(only, broker):
    # given two schedules of expire_matches and one of release_escrows, all every minute
    first = only("matches-a", cron="* * * * *")
    second = only("matches-b", cron="* * * * *")
    escrows = only("escrows", job="release_escrows", cron="* * * * *")

    # when the job expire_matches is paused, its slots are recorded skipped with the reason
    job_pause(job="expire_matches", by="ops@example.com", reason="incident 42")
    runs = {run.schedule_id: run for run in schedules_tick(now=SLOT).recorded}
    for schedule in (first, second):
        assert runs[schedule.pk].status == RunStatus.SKIPPED
        assert "paused by ops@example.com: incident 42" in runs[schedule.pk].status_reason
        assert not runs[schedule.pk].message_id
    assert runs[escrows.pk].status == RunStatus.QUEUED

    # when it is resumed and only schedule matches-b is paused, only that one is skipped
    job_resume(job="expire_matches", by="ops@example.com")
    schedule_pause(schedule=second, by="ops@example.com", reason="one region down")
    runs = {run.schedule_id: run for run in schedules_tick(now=SLOT + MINUTE).recorded}
    assert runs[first.pk].status == RunStatus.QUEUED
    assert runs[second.pk].status == RunStatus.SKIPPED
    assert "schedule matches-b paused by ops@example.com" in runs[second.pk].status_reason
    assert not JobState.objects.get(job="expire_matches").paused


def test_edits_and_removal_are_obeyed_from_the_next_minute(only, broker):
    # given an hourly schedule firing at the coming minute (edits take effect from the real
    # current minute, so this test keeps to real time)
    coming = slot_of(timezone.now()) + MINUTE
    schedule = only("matches", cron=f"{coming.minute} * * * *", since=coming)
    assert [run.slot for run in tick_through(coming, coming + 2 * MINUTE)] == [coming]

    # when its cron moves five minutes on, the next slot moves there, not an hour on
    moved = coming + 5 * MINUTE
    schedule_update(schedule=schedule, by="ops", reason="later", cron=f"{moved.minute} * * * *")
    assert [run.slot for run in tick_through(coming + 3 * MINUTE, coming + 6 * MINUTE)] == [moved]
    assert schedules_tick(now=coming + 6 * MINUTE).missed == {}

    # when it is removed, no slot of it is recorded any more; its runs stay
    schedule_remove(schedule=schedule, by="ops", reason="not needed")
    assert tick_through(coming + 60 * MINUTE, coming + 66 * MINUTE) == []
    assert JobRun.objects.filter(job="expire_matches").count() == 2


def test_a_new_schedule_does_not_run_the_slots_before_it_existed(only, broker):
    # given a daily schedule created at 10:30 for 10:00
    only("daily", cron="0 10 * * *", since=SLOT + 31 * MINUTE)

    # when the scheduler ticks at 10:31, nothing runs and nothing is missed
    report = schedules_tick(now=SLOT + 31 * MINUTE)
    assert report.recorded == []
    assert report.missed == {}


def test_after_three_missed_slots_a_catch_up_schedule_runs_once_and_the_other_none(only, broker):
    # given two hourly schedules, one catching up, both next due at 10:00
    catching_up = only("catching-up", cron="0 * * * *", catch_up=True, since=SLOT)
    skipping = only("skipping", cron="0 * * * *", catch_up=False, since=SLOT)
    Schedule.objects.update(next_slot=SLOT)

    # when no scheduler runs from 09:00 until 12:30 (10:00, 11:00 and 12:00 missed)
    report = schedules_tick(now=SLOT + timedelta(hours=2, minutes=30))

    # then the catch-up schedule ran its latest missed slot, once; the other ran none
    assert [(run.schedule_id, run.slot) for run in report.recorded] == [
        (catching_up.pk, SLOT + timedelta(hours=2))
    ]
    assert "catch-up" in report.recorded[0].reason
    assert report.missed == {"catching-up": 3, "skipping": 3}
    # and the next ticks run nothing more until 13:00
    assert (
        tick_through(SLOT + timedelta(hours=2, minutes=31), SLOT + timedelta(hours=2, minutes=33))
        == []
    )
    missed = schedule_missed_slots(schedule=skipping, now=SLOT + timedelta(hours=2, minutes=30))
    assert missed.count == 3


@pytest.mark.parametrize(
    ("zone", "cron", "day", "expected_utc"),
    [
        # spring forward: 02:30 does not exist, it fires once, at 03:00 CEST
        ("Europe/Berlin", "30 2 * * *", datetime(2026, 3, 29, tzinfo=UTC), ["01:00"]),
        # fall back: 02:30 happens twice, it fires once, at the first (CEST)
        ("Europe/Berlin", "30 2 * * *", datetime(2026, 10, 25, tzinfo=UTC), ["00:30"]),
        ("America/New_York", "30 1 * * *", datetime(2026, 3, 8, tzinfo=UTC), ["06:30"]),
        ("America/New_York", "30 1 * * *", datetime(2026, 11, 1, tzinfo=UTC), ["05:30"]),
    ],
)
def test_a_fixed_time_fires_once_on_both_daylight_saving_days(
    only, broker, zone, cron, day, expected_utc
):
    # given a daily schedule in a zone that changes its clocks that day
    only("dst", cron=cron, timezone=zone, since=day)

    # when the scheduler ticks every minute of the hours around the change
    runs = tick_through(day, day + timedelta(hours=8))

    # then it fired exactly once, at the expected instant
    assert [run.slot.strftime("%H:%M") for run in runs] == expected_utc


def test_an_hourly_schedule_runs_every_real_hour_when_the_clock_repeats_one(only, broker):
    # given an hourly schedule in Berlin on the fall-back day (02:00-03:00 happens twice)
    day = datetime(2026, 10, 25, tzinfo=UTC)
    only("hourly-berlin", cron="30 * * * *", timezone="Europe/Berlin", since=day)

    # when the scheduler ticks from 23:00 to 03:00 UTC
    runs = tick_through(day - timedelta(hours=1), day + timedelta(hours=3))

    # then it ran every real hour: 01:30, 02:30 (CEST), 02:30 (CET), 03:30 local
    assert [run.slot.strftime("%H:%M") for run in runs] == ["23:30", "00:30", "01:30", "02:30"]


def test_missed_slots_are_reported_and_the_next_run_repairs_their_work(only, broker):
    # given an hourly release schedule where only 07:00 and 10:00 were ticked (down 08-09)
    schedule = only("releases", job="release_escrows", cron="0 * * * *", since=SLOT.replace(hour=7))
    for hour in (7, 10):
        schedules_tick(now=SLOT.replace(hour=hour))
    donations = [donation_at(at=SLOT.replace(hour=hour, minute=30) - HOLD) for hour in (7, 8, 9)]

    # then the missed slots are exactly the outage's
    missed = schedule_missed_slots(schedule=schedule, now=SLOT, window=timedelta(hours=4))
    assert missed.latest == [SLOT.replace(hour=8), SLOT.replace(hour=9)]

    # when the 10:00 run executes, it sweeps everything due, the outage's work included
    run = job_run_execute(run_id=JobRun.objects.get(schedule=schedule, slot=SLOT).pk)
    assert run.status == RunStatus.SUCCEEDED
    assert run.summary["escrows_released"] == 3
    assert set(Escrow.objects.filter(donation__in=donations).values_list("status", flat=True)) == {
        EscrowStatus.RELEASED
    }


def test_a_schedules_retry_settings_travel_with_its_runs_messages(
    only, broker, django_capture_on_commit_callbacks
):
    # given a schedule overriding its job's retries, and one that does not
    own = only("own-retries", cron="* * * * *", max_retries=7, min_backoff_ms=60_000)
    only("job-retries", cron="* * * * *")

    # when their slot is ticked
    with django_capture_on_commit_callbacks(execute=True):
        schedules_tick(now=SLOT)

    # then the overriding schedule's message carries its settings, the other's none
    messages = [json.loads(raw) for raw in broker.client.hvals("dramatiq:default.msgs")]
    options = {message["args"][0]: message["options"] for message in messages}
    own_run = JobRun.objects.get(schedule=own)
    assert options[own_run.pk]["max_retries"] == 7
    assert options[own_run.pk]["min_backoff"] == 60_000
    other = JobRun.objects.exclude(schedule=own).get()
    assert "max_retries" not in options[other.pk]


def test_a_schedule_of_a_job_the_code_no_longer_has_is_reported_and_the_rest_run(
    only, broker, caplog
):
    # given a schedule of a job since removed from the code, beside a working one
    only("working", cron="* * * * *")
    gone = only("gone", cron="* * * * *")
    Schedule.objects.filter(pk=gone.pk).update(job="retired_job")

    # when the minute ticks
    report = schedules_tick(now=SLOT)

    # then the working schedule ran and the other was named in the log
    assert [run.job for run in report.recorded] == ["expire_matches"]
    assert "Schedule gone names job retired_job" in caplog.text


def test_a_tick_without_scheduled_at_uses_the_current_minute(only, broker):
    # given an every-minute schedule and a manually sent tick message (no scheduled_at)
    only("every-minute", cron="* * * * *", since=timezone.now() - timedelta(minutes=5))
    actor = tick_actor()
    before = timezone.now().replace(second=0, microsecond=0)

    # when the tick function runs inside a message context
    CurrentMessage._MESSAGE.set(actor.message())
    try:
        actor.fn()
    finally:
        CurrentMessage._MESSAGE.set(None)

    # then its slot is the current minute
    run = JobRun.objects.get(job="expire_matches")
    assert before <= run.slot <= timezone.now()


@pytest.mark.django_db
def test_pausing_an_unknown_job_is_refused():
    from jobs.registry import UnknownJob

    with pytest.raises(UnknownJob):
        job_pause(job="no_such_job", by="ops")
    assert not JobState.objects.exists()


def test_a_schedule_written_past_the_checks_is_reported_and_the_rest_run(only, broker, caplog):
    # given a schedule whose cron and one whose zone were edited straight into the database
    only("working", cron="* * * * *")
    bad_cron = only("bad-cron", cron="* * * * *")
    bad_zone = only("bad-zone", cron="* * * * *")
    Schedule.objects.filter(pk=bad_cron.pk).update(cron="61 * * * *")
    Schedule.objects.filter(pk=bad_zone.pk).update(timezone="Mars/Base")

    # when the minute ticks
    report = schedules_tick(now=SLOT)

    # then the working schedule ran, and each broken one was named in the log
    assert [run.schedule.name for run in report.recorded] == ["working"]
    assert "Schedule bad-cron cannot be evaluated" in caplog.text
    assert "Schedule bad-zone cannot be evaluated" in caplog.text
