import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jobs.models import JobRun, JobState, RunStatus, Trigger
from jobs.runner import job_run_execute
from jobs.scheduling import job_pause, job_resume, schedule_tick
from jobs.selectors import job_missed_slots
from ledger.models import Escrow
from ledger.statuses import EscrowStatus
from tests.factories import HOLD, donation_at

SLOT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_a_tick_records_its_slot_once(broker):
    # given a tick for the 10:00 slot, delivered twice (a second scheduler, a retry)
    first = schedule_tick(job="release_escrows", scheduled_at=SLOT + timedelta(seconds=0.4))
    second = schedule_tick(job="release_escrows", scheduled_at=SLOT + timedelta(seconds=2))

    # then exactly one queued run exists for the slot, as of the slot
    assert second is None
    run = JobRun.objects.get(job="release_escrows", slot=SLOT)
    assert run.pk == first.pk
    assert run.status == RunStatus.QUEUED
    assert run.trigger == Trigger.SCHEDULE
    assert run.as_of == SLOT
    assert run.message_id
    assert JobState.objects.get(job="release_escrows").last_slot == SLOT


@pytest.mark.django_db(transaction=True)
def test_concurrent_ticks_of_one_slot_record_one_run(broker):
    # given four schedulers ticking the same slot at once
    barrier = threading.Barrier(4)
    results = []

    def tick():
        barrier.wait()
        try:
            results.append(schedule_tick(job="expire_matches", scheduled_at=SLOT))
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then one run was recorded and the others saw the slot taken
    assert JobRun.objects.filter(job="expire_matches", slot=SLOT).count() == 1
    assert sum(result is not None for result in results) == 1


@pytest.mark.django_db
def test_pause_and_resume_take_effect_on_the_next_tick(broker):
    # given a paused job
    job_pause(job="expire_matches", by="ops@example.com", reason="incident 42")

    # when its slot ticks, the run is recorded as skipped with the reason
    skipped = schedule_tick(job="expire_matches", scheduled_at=SLOT)
    assert skipped.status == RunStatus.SKIPPED
    assert "paused by ops@example.com: incident 42" in skipped.status_reason
    assert not skipped.message_id

    # when it is resumed, the next slot's run is queued and sent
    job_resume(job="expire_matches", by="ops@example.com")
    queued = schedule_tick(job="expire_matches", scheduled_at=SLOT + timedelta(hours=6))
    assert queued.status == RunStatus.QUEUED
    assert queued.message_id
    state = JobState.objects.get(job="expire_matches")
    assert not state.paused
    assert state.changed_by == "ops@example.com"


@pytest.mark.django_db
def test_missed_slots_show_when_the_scheduler_was_down_and_the_next_run_repairs_them(broker):
    # given hourly release slots where only 07:00 and 10:00 were recorded (down 08:00-09:00)
    now = SLOT
    for hour in (7, 10):
        schedule_tick(job="release_escrows", scheduled_at=now.replace(hour=hour))
    # and escrows that fell due during the outage and before it
    due_times = [
        now.replace(hour=7, minute=30),
        now.replace(hour=8, minute=30),
        now.replace(hour=9, minute=30),
    ]
    donations = [donation_at(at=due - HOLD) for due in due_times]

    # then the missed slots are exactly the outage's
    missed = job_missed_slots(job="release_escrows", now=now, window=timedelta(hours=4))
    assert missed == [now.replace(hour=8), now.replace(hour=9)]

    # when the 10:00 run executes, it sweeps everything due, the outage's work included
    run = JobRun.objects.get(job="release_escrows", slot=now)
    run = job_run_execute(run_id=run.pk)
    assert run.status == RunStatus.SUCCEEDED
    assert run.summary["escrows_released"] == 3
    assert set(Escrow.objects.filter(donation__in=donations).values_list("status", flat=True)) == {
        EscrowStatus.RELEASED
    }


@pytest.mark.django_db
def test_pausing_an_unknown_job_is_refused():
    from jobs.registry import UnknownJob

    with pytest.raises(UnknownJob):
        job_pause(job="no_such_job", by="ops")
    assert not JobState.objects.exists()


@pytest.mark.django_db
def test_a_tick_without_scheduled_at_uses_the_current_minute(broker):
    from jobs.actors import tick_actor_for

    # given a manually sent tick message (no periodiq scheduled_at option)
    actor = tick_actor_for("expire_matches")
    before = timezone.now().replace(second=0, microsecond=0)

    # when the tick function runs inside a message context
    from dramatiq.middleware import CurrentMessage

    message = actor.message()
    CurrentMessage._MESSAGE.set(message)
    try:
        actor.fn()
    finally:
        CurrentMessage._MESSAGE.set(None)

    # then its slot is the current minute
    run = JobRun.objects.get(job="expire_matches")
    assert before <= run.slot <= timezone.now()
